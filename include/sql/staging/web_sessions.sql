-- grain: one row per web session (latest version received)
-- materialized: model
-- Rejected (raw.quarantine): sessions without an id, unreadable customers, counts or timestamps; sessions
-- started or updated at or after the run's cutoff (held: every later run examines them again). Two
-- versions with the same updated_at and different content are recorded (staging.corrections).
create table if not exists staging.web_sessions (
    session_id text primary key, -- Tracker's session id
    customer_id bigint, -- Logged-in shop customer; null for leads and anonymous visitors
    contact_id text, -- CRM contact identified by an e-mail click (leads); null otherwise
    started_at timestamptz not null, -- First hit of the session
    ended_at timestamptz, -- Last hit of the session
    page_views integer not null, -- Pages viewed in the session, product pages included
    product_views integer not null, -- Product pages viewed (rows in staging.product_views)
    updated_at timestamptz -- Last change in the shop
)
;;
select staging.begin_checked('raw.shop_web_sessions', 'staging.web_sessions', %(run_ts)s)
;;
create temporary table _judged on commit drop as
with

source as materialized (
    select
        r.*,
        r.ctid as row_position,
        staging.clean(r.session_id) as k_session_id,
        staging.try_bigint(r.customer_id) as t_customer_id,
        staging.try_bigint(r.page_views) as t_page_views,
        staging.try_bigint(r.product_views) as t_product_views,
        staging.try_ts(r.started_at) as started_ts,
        staging.try_ts(r.ended_at) as ended_ts,
        staging.try_ts(r.updated_at) as updated_ts,
        md5(concat_ws('|', r.session_id, r.customer_id, r.contact_id, r.started_at, r.ended_at, r.page_views, r.product_views, r.updated_at)) as content_hash
    from raw.shop_web_sessions as r
    where staging.in_scope(
        r._loaded_at, %(run_ts)s, (select staging.since()), r.ctid in (select staging.rows_to_recheck())
    )
),

judged as (
    select
        s.*,
        coalesce(s.k_session_id, '') as row_key,
        coalesce(s.k_session_id, '') as source_ref,
        case
            when s.k_session_id is null then 'invalid_key'
            when s.customer_id is not null and s.t_customer_id is null then 'invalid_customer_id'
            when
                s.t_page_views is null or s.t_product_views is null
                or s.t_page_views not between 0 and 1000000 or s.t_product_views not between 0 and 1000000
                then 'invalid_count'
            when s.started_ts is null or s.updated_ts is null or (s.ended_at is not null and s.ended_ts is null)
                then 'invalid_timestamp'
            else staging.held_code(s.started_ts, s.updated_ts, %(run_ts)s)
        end as reject_code
    from source as s
),

reasons as (
    select
        j.*,
        case j.reject_code
            when 'invalid_key' then 'session_id is empty; every session needs its tracker id'
            when 'invalid_customer_id' then 'customer_id ' || quote_literal(j.customer_id) || ' is not a whole number'
            when 'invalid_count'
                then
                    'page_views / product_views ' || coalesce(quote_literal(j.page_views), 'empty')
                    || ' / ' || coalesce(quote_literal(j.product_views), 'empty') || ' must be whole numbers >= 0'
            when 'invalid_timestamp' then
                'started_at / ended_at / updated_at must be ISO 8601 timestamps (got '
                || coalesce(quote_literal(j.started_at), 'empty') || ', ' || coalesce(quote_literal(j.ended_at), 'empty')
                || ', ' || coalesce(quote_literal(j.updated_at), 'empty') || ')'
            else staging.held_reason(j.reject_code, 'started_at', j.started_at, j.updated_at, %(run_ts)s)
        end as reject_reason
    from judged as j
)

select * from reasons
;;
select staging.settle_checked('raw.shop_web_sessions', array['k_session_id'], 'duplicate_row', %(run_date)s)
;;
insert into staging.web_sessions
with

final as (
    select
        c.k_session_id as session_id,
        c.t_customer_id as customer_id,
        staging.clean(c.contact_id) as contact_id,
        c.started_ts as started_at,
        c.ended_ts as ended_at,
        c.t_page_views::integer as page_views,
        c.t_product_views::integer as product_views,
        c.updated_ts as updated_at
    from _checked as c
    where c.disposition = 'staged'
)

select * from final
on conflict (session_id) do update
set (customer_id, contact_id, started_at, ended_at, page_views, product_views, updated_at) = (
    excluded.customer_id, excluded.contact_id, excluded.started_at, excluded.ended_at, excluded.page_views,
    excluded.product_views, excluded.updated_at
)
;;
select staging.finish_checked('staging.web_sessions', 'raw.shop_web_sessions', %(run_date)s, %(run_ts)s)
