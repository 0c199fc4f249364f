-- grain: one row per shop customer (latest version received)
-- materialized: model
create table if not exists staging.customers (
    customer_id bigint primary key,
    email text,
    first_name text,
    last_name text,
    country text,
    created_at timestamptz,
    updated_at timestamptz,
    deleted_at timestamptz,
    is_deleted boolean not null
)
;;
truncate staging.customers
;;
insert into staging.customers
with

source as (
    select * from raw.shop_customers
    where _loaded_at <= %(run_ts)s
),

latest as (
    select distinct on (customer_id::bigint)
        customer_id::bigint as customer_id,
        lower(trim(email)) as email,
        nullif(trim(first_name), '') as first_name,
        nullif(trim(last_name), '') as last_name,
        upper(nullif(trim(country), '')) as country,
        created_at::timestamptz as created_at,
        updated_at::timestamptz as updated_at,
        deleted_at::timestamptz as deleted_at
    from source
    order by customer_id::bigint, updated_at::timestamptz desc, _loaded_at desc
),

final as (
    select
        customer_id,
        email,
        first_name,
        last_name,
        country,
        created_at,
        updated_at,
        deleted_at,
        deleted_at is not null as is_deleted
    from latest
)

select * from final
