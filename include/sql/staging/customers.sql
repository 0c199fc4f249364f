-- grain: one row per shop customer (one per normalized e-mail address; latest version received)
-- materialized: model
-- A person registered twice (same address, two customer ids) is one customer: the earliest
-- registration survives and the other id is recorded in staging.merged_rows, so its orders follow it
-- (staging.orders maps them). Rows without a readable key or timestamps are quarantined.
create table if not exists staging.customers (
    customer_id bigint primary key, -- Shop customer id
    email text, -- E-mail address, lower case (personal data)
    first_name text, -- First name (personal data)
    last_name text, -- Last name (personal data)
    country text, -- ISO country code
    created_at timestamptz, -- When the account was created
    updated_at timestamptz, -- Last change in the shop
    deleted_at timestamptz, -- When the account was deleted
    is_deleted boolean not null -- True when the shop deleted the account
)
;;
select staging.begin_checked('raw.shop_customers')
;;
create temporary table _judged on commit drop as
with

source as materialized (
    select
        r.*,
        r.ctid as row_position,
        staging.try_bigint(r.customer_id) as k_customer_id,
        lower(staging.clean(r.email)) as t_email,
        staging.try_ts(r.created_at) as created_ts,
        staging.try_ts(r.updated_at) as updated_ts,
        staging.try_ts(r.deleted_at) as deleted_ts
    from raw.shop_customers as r
    where r._loaded_at <= %(run_ts)s
),

judged as materialized (
    select
        s.*,
        staging.key_text(s.k_customer_id, s.customer_id) as row_key,
        staging.key_text(s.k_customer_id, s.customer_id) as source_ref,
        case
            when s.k_customer_id is null then 'invalid_key'
            when s.updated_ts is null then 'invalid_timestamp'
            when s.deleted_at is not null and s.deleted_ts is null then 'invalid_timestamp'
            else staging.held_code(null, s.updated_ts, %(run_ts)s)
        end as reject_code,
        case
            when s.k_customer_id is null
                then 'customer_id ' || coalesce(quote_literal(s.customer_id), 'is empty')
                     || ': the shop must send a whole-number customer id'
            when s.updated_ts is null
                then 'updated_at ' || coalesce(quote_literal(s.updated_at), 'is empty')
                     || ' is not an ISO 8601 timestamp; the row cannot be ordered against its other versions'
            when s.deleted_at is not null and s.deleted_ts is null
                then 'deleted_at ' || quote_literal(s.deleted_at) || ' is not an ISO 8601 timestamp'
            when s.updated_ts >= %(run_ts)s then staging.future_reason('updated_at', s.updated_at, %(run_ts)s)
        end as reject_reason,
        md5(concat_ws('|', s.customer_id, s.email, s.first_name, s.last_name, s.country, s.created_at,
                      s.updated_at, s.deleted_at)) as content_hash
    from source as s
)

select * from judged
;;
select staging.settle_checked('raw.shop_customers', array['k_customer_id'], 'duplicate_customer_id', %(run_date)s)
;;
alter table _checked add column surviving_customer_id bigint
;;
-- Live customers with the same address are one person: the earliest registration survives.
update _checked as c
set
    surviving_customer_id = s.surviving_customer_id,
    disposition = case when s.surviving_customer_id <> c.k_customer_id then 'merged' else c.disposition end
from (
    select
        r.row_position,
        first_value(r.k_customer_id) over (
            partition by r.t_email order by r.created_ts nulls last, r.k_customer_id
        ) as surviving_customer_id
    from _checked as r
    where r.disposition = 'staged' and r.t_email is not null and r.deleted_ts is null
) as s
where c.row_position = s.row_position
;;
insert into staging.merged_rows (run_date, table_name, kind, merged_key, surviving_key, source_ref, batch_id, match_key)
select
    %(run_date)s, 'raw.shop_customers', 'same_person_two_ids', c.row_key, c.surviving_customer_id::text,
    c.source_ref, c._batch_id, c.t_email
from _checked as c
where c.disposition = 'merged'
;;
insert into staging.corrections
    (run_date, table_name, row_key, source_ref, batch_id, kind, field, original_value, corrected_value)
select %(run_date)s, 'raw.shop_customers', c.row_key, c.source_ref, c._batch_id, f.kind, f.field, f.original, f.corrected
from _checked as c
cross join lateral (
    values
        ('invalid_email', 'email', c.email, null, c.t_email is not null and not staging.is_email(c.t_email)),
        ('invalid_timestamp', 'created_at', c.created_at, null, c.created_at is not null and c.created_ts is null)
) as f (kind, field, original, corrected, applies)
where c.disposition <> 'quarantined' and f.applies
;;
truncate staging.customers
;;
insert into staging.customers
with

final as (
    select
        c.k_customer_id as customer_id,
        case when staging.is_email(c.t_email) then c.t_email end as email,
        staging.clean(c.first_name) as first_name,
        staging.clean(c.last_name) as last_name,
        upper(staging.clean(c.country)) as country,
        c.created_ts as created_at,
        c.updated_ts as updated_at,
        c.deleted_ts as deleted_at,
        c.deleted_ts is not null as is_deleted
    from _checked as c
    where c.disposition = 'staged'
)

select * from final
;;
select staging.finish_checked('staging.customers', 'raw.shop_customers', %(run_date)s, %(run_ts)s)
