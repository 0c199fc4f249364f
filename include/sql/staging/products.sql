-- grain: one row per product (latest version received)
-- materialized: model
-- Rejected (raw.quarantine): unreadable product ids, prices or timestamps, negative or out-of-range prices,
-- and versions updated at or after the run's cutoff (held: every later run examines them again). Two
-- versions with the same updated_at and different content are recorded (staging.corrections).
create table if not exists staging.products (
    product_id bigint primary key, -- Product id
    sku text, -- Stock keeping unit
    name text, -- Product name
    category text not null, -- Product category
    price numeric(12, 2), -- List price
    image_url text, -- Product image URL
    created_at timestamptz, -- When the product was created
    updated_at timestamptz -- Last change in the shop
)
;;
select staging.begin_checked('raw.shop_products')
;;
create temporary table _judged on commit drop as
with

source as materialized (
    select
        r.*,
        r.ctid as row_position,
        staging.try_bigint(r.product_id) as k_product_id,
        staging.try_numeric(r.price) as t_price,
        staging.try_ts(r.created_at) as created_ts,
        staging.try_ts(r.updated_at) as updated_ts,
        md5(concat_ws(
            '|', r.product_id, r.sku, r.name, r.category, r.price, r.image_url, r.created_at,
            r.updated_at
        )) as content_hash
    from raw.shop_products as r
    where r._loaded_at <= %(run_ts)s
),

judged as (
    select
        s.*,
        staging.key_text(s.k_product_id, s.product_id) as row_key,
        staging.key_text(s.k_product_id, s.product_id) as source_ref,
        case
            when s.k_product_id is null then 'invalid_key'
            when s.price is not null and s.t_price is null then 'invalid_price'
            when s.t_price < 0 then 'negative_price'
            when s.t_price >= 1e10 then 'amount_out_of_range'
            when s.updated_ts is null or (s.created_at is not null and s.created_ts is null) then 'invalid_timestamp'
            else staging.held_code(null, s.updated_ts, %(run_ts)s)
        end as reject_code
    from source as s
),

reasons as (
    select
        j.*,
        case j.reject_code
            when 'invalid_key'
                then
                    'product_id ' || coalesce(quote_literal(j.product_id), 'is empty')
                    || ': the shop must send a whole-number product id'
            when 'invalid_price' then 'price ' || quote_literal(j.price) || ' is not a plain number such as 12.50'
            when 'negative_price' then 'price ' || quote_literal(j.price) || ' is below zero'
            when 'amount_out_of_range' then 'price ' || quote_literal(j.price)
                || ' is out of range (below 10,000,000,000); fix the product in the shop'
            when 'invalid_timestamp' then
                'created_at / updated_at ' || coalesce(quote_literal(j.created_at), 'empty')
                || ' / ' || coalesce(quote_literal(j.updated_at), 'empty') || ' must be ISO 8601 timestamps'
            else staging.held_reason(j.reject_code, null, null, j.updated_at, %(run_ts)s)
        end as reject_reason
    from judged as j
)

select * from reasons
;;
select staging.settle_checked('raw.shop_products', array['k_product_id'], 'duplicate_row', %(run_date)s)
;;
truncate staging.products
;;
insert into staging.products
with

final as (
    select
        c.k_product_id as product_id,
        staging.clean(c.sku) as sku,
        staging.clean(c.name) as name,
        coalesce(staging.clean(c.category), 'Uncategorised') as category,
        c.t_price::numeric(12, 2) as price,
        staging.clean(c.image_url) as image_url,
        c.created_ts as created_at,
        c.updated_ts as updated_at
    from _checked as c
    where c.disposition = 'staged'
)

select * from final
;;
select staging.finish_checked('staging.products', 'raw.shop_products', %(run_date)s, %(run_ts)s)
