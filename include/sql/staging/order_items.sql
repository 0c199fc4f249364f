-- grain: one row per order line (latest version received)
-- materialized: model
-- Rejected (raw.quarantine): unreadable keys or numbers, negative quantities or prices, lines whose
-- order is not staged (it never arrived, or staging rejected it), unknown products. A line with price
-- 0 is kept and flagged free (staging.corrections, kind zero_price). Versions updated at or after the run's
-- cutoff are held (every later run examines them again); two versions with the same updated_at and
-- different content are recorded (staging.corrections, kind conflicting_version).
create table if not exists staging.order_items (
    order_id bigint not null, -- Shop order id
    line_no integer not null, -- Line within the order
    product_id bigint not null, -- Product id
    quantity integer not null, -- Quantity
    unit_price numeric(12, 2) not null, -- Price per unit
    line_amount numeric(14, 2) not null, -- quantity times unit_price
    updated_at timestamptz, -- Last change in the shop
    is_free boolean not null default false, -- Unit price 0: a gift or a data error; left out of price statistics
    primary key (order_id, line_no)
)
;;
alter table staging.order_items add column if not exists is_free boolean not null default false
;;
select staging.begin_checked('raw.shop_order_items', 'staging.order_items', %(run_ts)s)
;;
create temporary table _judged on commit drop as
with

source as materialized (
    select
        r.*,
        r.ctid as row_position,
        staging.try_bigint(r.order_id) as k_order_id,
        staging.try_bigint(r.line_no) as k_line_no,
        staging.try_bigint(r.product_id) as t_product_id,
        staging.try_bigint(r.quantity) as t_quantity,
        staging.try_numeric(r.unit_price) as t_price,
        staging.try_ts(r.updated_at) as updated_ts
    from raw.shop_order_items as r
    where staging.in_scope(
        r._loaded_at, %(run_ts)s, (select staging.since()),
        -- Judged again: lines waiting for their order or product (their reason names the order's reject).
        r.ctid in (select staging.rows_to_recheck($$ s.reject_code in ('orphan_order_item', 'unknown_product') $$))
    )
),

rejected_orders as (
    select distinct on (q.row_key)
        q.row_key,
        q.reason_code
    from raw.quarantine as q
    where q.stage = 'staging' and q.table_name = 'raw.shop_orders'
    order by q.row_key, q.reason_code
),

judged as materialized (
    select
        s.*,
        staging.key_text(s.k_order_id, s.order_id) || ':' || staging.key_text(s.k_line_no, s.line_no)
            as row_key,
        case
            when s.k_order_id is null or s.k_line_no is null or s.k_line_no not between 1 and 100000 then 'invalid_key'
            when s.t_product_id is null then 'invalid_product_id'
            when s.t_quantity is null or s.t_quantity > 1000000 then 'invalid_quantity'
            when s.t_quantity < 0 then 'negative_quantity'
            when s.t_price is null then 'invalid_price'
            when s.t_price < 0 then 'negative_price'
            when s.t_price >= 1e10 or s.t_quantity * s.t_price >= 1e12 then 'amount_out_of_range'
            when s.updated_ts is null then 'invalid_timestamp'
            when s.updated_ts >= %(run_ts)s then 'future_updated_at'
            when o.order_id is null then 'orphan_order_item'
            when p.product_id is null then 'unknown_product'
        end as reject_code,
        ro.reason_code as order_reject_code,
        md5(concat_ws('|', s.order_id, s.line_no, s.product_id, s.quantity, s.unit_price, s.updated_at))
            as content_hash
    from source as s
    left join staging.orders as o on s.k_order_id = o.order_id
    left join staging.products as p on s.t_product_id = p.product_id
    left join rejected_orders as ro on s.k_order_id::text = ro.row_key
),

reasons as (
    select
        j.*,
        j.row_key as source_ref,
        case j.reject_code
            when 'invalid_key'
                then
                    'order_id ' || coalesce(quote_literal(j.order_id), 'empty') || ' / line_no '
                    || coalesce(quote_literal(j.line_no), 'empty') || ': both must be whole numbers (line_no from 1)'
            when 'invalid_product_id'
                then
                    'product_id ' || coalesce(quote_literal(j.product_id), 'is empty')
                    || ' is not a whole number'
            when 'invalid_quantity'
                then
                    'quantity ' || coalesce(quote_literal(j.quantity), 'is empty')
                    || ' is not a whole number of items'
            when 'negative_quantity'
                then
                    'quantity ' || quote_literal(j.quantity)
                    || ' is below zero; returns belong in refunds, not in negative order lines'
            when 'invalid_price'
                then
                    'unit_price ' || coalesce(quote_literal(j.unit_price), 'is empty')
                    || ' is not a plain number such as 12.50'
            when 'negative_price' then 'unit_price ' || quote_literal(j.unit_price) || ' is below zero'
            when 'amount_out_of_range'
                then
                    'unit_price ' || quote_literal(j.unit_price) || ' x quantity ' || quote_literal(j.quantity)
                    || ' is out of range (unit price below 10,000,000,000, line amount below'
                    || ' 1,000,000,000,000); fix the line in the shop'
            when 'invalid_timestamp'
                then
                    'updated_at ' || coalesce(quote_literal(j.updated_at), 'is empty')
                    || ' is not an ISO 8601 timestamp'
            when 'orphan_order_item'
                then
                    case
                        when j.order_reject_code is not null
                            then
                                'its order ' || j.k_order_id::text
                                || ' was rejected (' || j.order_reject_code || ', see raw.quarantine); the line goes with it'
                        else 'no order ' || j.k_order_id::text || ' was received; the line is staged once its order arrives'
                    end
            when 'unknown_product' then
                'product ' || j.t_product_id::text
                || ' is not in the catalogue (staging.products); load the product first'
            else staging.held_reason(j.reject_code, null, null, j.updated_at, %(run_ts)s)
        end as reject_reason
    from judged as j
)

select * from reasons
;;
select staging.settle_checked('raw.shop_order_items', array['k_order_id', 'k_line_no'], 'duplicate_row', %(run_date)s)
;;
insert into staging.corrections
(run_date, table_name, row_key, source_ref, batch_id, kind, field, original_value, corrected_value)
select
    %(run_date)s,
    'raw.shop_order_items',
    c.row_key,
    c.source_ref,
    c._batch_id,
    'zero_price',
    'unit_price',
    c.unit_price,
    '0 (is_free)'
from _checked as c
where c.disposition <> 'quarantined' and c.t_price = 0
;;
insert into staging.order_items
with

final as (
    select
        c.k_order_id as order_id,
        c.k_line_no::integer as line_no,
        c.t_product_id as product_id,
        c.t_quantity::integer as quantity,
        c.t_price::numeric(12, 2) as unit_price,
        (c.t_quantity * c.t_price)::numeric(14, 2) as line_amount,
        c.updated_ts as updated_at,
        c.t_price = 0 as is_free
    from _checked as c
    where c.disposition = 'staged'
)

select * from final
on conflict (order_id, line_no) do update
set (product_id, quantity, unit_price, line_amount, updated_at, is_free) = (
    excluded.product_id, excluded.quantity, excluded.unit_price, excluded.line_amount, excluded.updated_at,
    excluded.is_free
)
;;
select staging.finish_checked('staging.order_items', 'raw.shop_order_items', %(run_date)s, %(run_ts)s)
