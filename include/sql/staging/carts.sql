-- grain: one row per shop cart (latest version received)
-- materialized: model
-- Rejected (raw.quarantine): unreadable keys, customers or timestamps, unknown statuses, carts whose lines
-- add up to more than a cart value can hold (with their lines, see staging.cart_items), and versions
-- created or updated at or after the run's cutoff (held: every later run examines them again). Two
-- versions with the same updated_at and different content are recorded (staging.corrections).
create table if not exists staging.carts (
    cart_id bigint primary key, -- Cart id
    customer_id bigint not null, -- Shop customer id (the surviving one)
    created_at timestamptz not null, -- When the cart was opened
    updated_at timestamptz not null, -- Last change of the cart (the abandonment time for abandoned carts)
    status text not null, -- open, abandoned or converted
    order_id bigint, -- The order that bought the cart (converted carts)
    cart_value numeric(12, 2) not null, -- Sum of quantity times unit price of its lines
    currency text -- ISO currency code
)
;;
select staging.begin_checked('raw.shop_carts')
;;
create temporary table _judged on commit drop as
with

source as materialized (
    select
        r.*,
        r.ctid as row_position,
        staging.try_bigint(r.cart_id) as k_cart_id,
        staging.try_bigint(r.customer_id) as t_customer_id,
        staging.try_bigint(r.order_id) as t_order_id,
        lower(staging.clean(r.status)) as t_status,
        staging.try_ts(r.created_at) as created_ts,
        staging.try_ts(r.updated_at) as updated_ts,
        md5(concat_ws(
            '|', r.cart_id, r.customer_id, r.status, r.order_id, r.currency, r.created_at, r.updated_at
        )) as content_hash
    from raw.shop_carts as r
    where r._loaded_at <= %(run_ts)s
),

too_large as (
    -- Carts whose lines staging.cart_items rejected for the cart's total: the cart goes with them.
    select distinct q.row_key
    from raw.quarantine as q
    where
        q.stage = 'staging' and q.table_name = 'raw.shop_cart_items'
        and q.reason_code = 'cart_value_out_of_range'
),

judged as (
    select
        s.*,
        staging.key_text(s.k_cart_id, s.cart_id) as row_key,
        staging.key_text(s.k_cart_id, s.cart_id) as source_ref,
        case
            when s.k_cart_id is null then 'invalid_key'
            when s.t_customer_id is null then 'invalid_customer_id'
            when s.order_id is not null and s.t_order_id is null then 'invalid_order_id'
            when s.t_status is null or s.t_status not in ('open', 'abandoned', 'converted') then 'invalid_status'
            when s.created_ts is null or s.updated_ts is null then 'invalid_timestamp'
            when s.created_ts >= %(run_ts)s then 'future_timestamp'
            when s.updated_ts >= %(run_ts)s then 'future_updated_at'
            when s.k_cart_id in (select split_part(t.row_key, ':', 1)::bigint from too_large as t)
                then 'cart_value_out_of_range'
        end as reject_code
    from source as s
),

reasons as (
    select
        j.*,
        case j.reject_code
            when 'invalid_key' then 'cart_id ' || coalesce(quote_literal(j.cart_id), 'is empty')
                || ': the shop must send a whole-number cart id'
            when 'invalid_customer_id' then 'customer_id ' || coalesce(quote_literal(j.customer_id), 'is empty')
                || ' is not a whole number'
            when 'invalid_order_id' then 'order_id ' || quote_literal(j.order_id) || ' is not a whole number'
            when 'invalid_status' then 'status ' || coalesce(quote_literal(j.status), 'is empty')
                || ' is not one of open, abandoned, converted'
            when 'invalid_timestamp' then 'created_at / updated_at ' || coalesce(quote_literal(j.created_at), 'empty')
                || ' / ' || coalesce(quote_literal(j.updated_at), 'empty') || ' must be ISO 8601 timestamps'
            when 'cart_value_out_of_range' then 'its lines add up to 10,000,000,000 or more, out of range for a cart'
                || ' value (staging.cart_items quarantined them); fix the cart lines in the shop'
            else staging.held_reason(j.reject_code, 'created_at', j.created_at, j.updated_at, %(run_ts)s)
        end as reject_reason
    from judged as j
)

select * from reasons
;;
select staging.settle_checked('raw.shop_carts', array['k_cart_id'], 'duplicate_row', %(run_date)s)
;;
truncate staging.carts
;;
insert into staging.carts
with

customers as (
    -- A cart of a customer id that staging merged into another follows the surviving customer.
    select
        m.merged_key::bigint as customer_id,
        m.surviving_key::bigint as surviving_customer_id
    from staging.merged_rows as m
    where m.table_name = 'raw.shop_customers' and m.kind = 'same_person_two_ids'
),

lines as (
    select
        i.cart_id,
        sum(i.quantity * i.unit_price) as cart_value
    from staging.cart_items as i
    group by i.cart_id
),

final as (
    select
        c.k_cart_id as cart_id,
        coalesce(cu.surviving_customer_id, c.t_customer_id) as customer_id,
        c.created_ts as created_at,
        c.updated_ts as updated_at,
        c.t_status as status,
        c.t_order_id as order_id,
        coalesce(lines.cart_value, 0)::numeric(12, 2) as cart_value,
        upper(staging.clean(c.currency)) as currency
    from _checked as c
    left join customers as cu on c.t_customer_id = cu.customer_id
    left join lines on c.k_cart_id = lines.cart_id
    where c.disposition = 'staged'
)

select * from final
;;
select staging.finish_checked('staging.carts', 'raw.shop_carts', %(run_date)s, %(run_ts)s)
