-- grain: one row per cart line (latest version received)
-- materialized: model
-- Rejected (raw.quarantine): unreadable keys, products, quantities, prices or timestamps; negative quantities
-- or prices; every line of a cart whose lines add up to 10,000,000,000 or more (out of range for the
-- cart's value, checked before any cast: staging.carts rejects the cart too); versions updated at or after
-- the run's cutoff (held: every later run examines them again). Two versions with the same updated_at
-- and different content are recorded (staging.corrections).
create table if not exists staging.cart_items (
    cart_id bigint not null, -- Cart id
    line_no integer not null, -- Line within the cart
    product_id bigint not null, -- Product id
    quantity integer not null, -- Quantity
    unit_price numeric(12, 2) not null, -- Price per unit
    updated_at timestamptz, -- Last change in the shop
    primary key (cart_id, line_no)
)
;;
select staging.begin_checked('raw.shop_cart_items')
;;
create temporary table _judged on commit drop as
with

source as materialized (
    select
        r.*,
        r.ctid as row_position,
        staging.try_bigint(r.cart_id) as k_cart_id,
        staging.try_bigint(r.line_no) as k_line_no,
        staging.try_bigint(r.product_id) as t_product_id,
        staging.try_bigint(r.quantity) as t_quantity,
        staging.try_numeric(r.unit_price) as t_price,
        staging.try_ts(r.updated_at) as updated_ts,
        md5(concat_ws('|', r.cart_id, r.line_no, r.product_id, r.quantity, r.unit_price, r.updated_at)) as content_hash
    from raw.shop_cart_items as r
    where r._loaded_at <= %(run_ts)s
),

line_checked as materialized (
    select
        s.*,
        staging.key_text(s.k_cart_id, s.cart_id) || ':' || staging.key_text(s.k_line_no, s.line_no) as row_key,
        staging.key_text(s.k_cart_id, s.cart_id) || ':' || staging.key_text(s.k_line_no, s.line_no) as source_ref,
        case
            when s.k_cart_id is null or s.k_line_no is null or s.k_line_no not between 1 and 100000 then 'invalid_key'
            when s.t_product_id is null then 'invalid_product_id'
            when s.t_quantity is null or s.t_quantity not between 0 and 1000000 then 'invalid_quantity'
            when s.t_price is null or s.t_price < 0 then 'invalid_price'
            when s.t_price >= 1e10 or s.t_quantity * s.t_price >= 1e9 then 'amount_out_of_range'
            when s.updated_ts is null then 'invalid_timestamp'
            else staging.held_code(null, s.updated_ts, %(run_ts)s)
        end as line_code
    from source as s
),

cart_totals as (
    -- What the accepted latest version of each line adds up to per cart (numeric, no cast yet): a
    -- total a cart value cannot hold rejects every line of the cart instead of stopping the run.
    select
        v.k_cart_id,
        sum(v.t_quantity * v.t_price) as cart_value
    from (
        select distinct on (l.k_cart_id, l.k_line_no)
            l.k_cart_id,
            l.t_quantity,
            l.t_price
        from line_checked as l
        where l.line_code is null
        order by l.k_cart_id asc, l.k_line_no asc, l.updated_ts desc, l._loaded_at desc, l.row_position asc
    ) as v
    group by v.k_cart_id
),

judged as (
    select
        l.*,
        t.cart_value,
        coalesce(
            l.line_code,
            case when t.cart_value >= 1e10 then 'cart_value_out_of_range' end
        ) as reject_code
    from line_checked as l
    left join cart_totals as t on l.k_cart_id = t.k_cart_id
),

reasons as (
    select
        j.*,
        case j.reject_code
            when 'invalid_key'
                then
                    'cart_id ' || coalesce(quote_literal(j.cart_id), 'empty') || ' / line_no '
                    || coalesce(quote_literal(j.line_no), 'empty') || ': both must be whole numbers (line_no from 1)'
            when 'invalid_product_id'
                then
                    'product_id ' || coalesce(quote_literal(j.product_id), 'is empty')
                    || ' is not a whole number'
            when 'invalid_quantity'
                then
                    'quantity ' || coalesce(quote_literal(j.quantity), 'is empty')
                    || ' is not a whole number of items >= 0'
            when 'invalid_price'
                then
                    'unit_price ' || coalesce(quote_literal(j.unit_price), 'is empty')
                    || ' is not an amount >= 0 such as 12.50'
            when 'amount_out_of_range'
                then
                    'unit_price ' || quote_literal(j.unit_price) || ' x quantity ' || quote_literal(j.quantity)
                    || ' is out of range (unit price below 10,000,000,000, line amount below 1,000,000,000);'
                    || ' fix the cart line'
            when 'invalid_timestamp' then
                'updated_at ' || coalesce(quote_literal(j.updated_at), 'is empty')
                || ' is not an ISO 8601 timestamp'
            when 'cart_value_out_of_range'
                then
                    'the lines of cart ' || j.k_cart_id::text || ' add up to ' || j.cart_value::text
                    || ', out of range for a cart value (below 10,000,000,000): the cart and its lines are'
                    || ' held back; fix the cart in the shop'
            else staging.held_reason(j.reject_code, null, null, j.updated_at, %(run_ts)s)
        end as reject_reason
    from judged as j
)

select * from reasons
;;
select staging.settle_checked('raw.shop_cart_items', array['k_cart_id', 'k_line_no'], 'duplicate_row', %(run_date)s)
;;
truncate staging.cart_items
;;
insert into staging.cart_items
with

final as (
    select
        c.k_cart_id as cart_id,
        c.k_line_no::integer as line_no,
        c.t_product_id as product_id,
        c.t_quantity::integer as quantity,
        c.t_price::numeric(12, 2) as unit_price,
        c.updated_ts as updated_at
    from _checked as c
    where c.disposition = 'staged'
)

select * from final
;;
select staging.finish_checked('staging.cart_items', 'raw.shop_cart_items', %(run_date)s, %(run_ts)s)
