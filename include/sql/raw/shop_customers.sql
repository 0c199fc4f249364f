-- grain: one row per customer version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_customers (
    customer_id text,
    email text,
    first_name text,
    last_name text,
    country text,
    created_at text,
    updated_at text,
    deleted_at text,
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shop_customers__batch on raw.shop_customers (_batch_id)
