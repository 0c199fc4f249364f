-- grain: one row per web session version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_web_sessions (
    session_id text,
    customer_id text,
    contact_id text,
    started_at text,
    ended_at text,
    page_views text,
    product_views text,
    updated_at text,
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shop_web_sessions__batch on raw.shop_web_sessions (_batch_id)
