-- grain: one row per Shopify customer version received in a batch
-- materialized: table
-- Landing table for the Shopify Admin REST API (customers.json): text as received plus the whole
-- resource in payload. A version is (customer_id, updated_at).
create table if not exists raw.shopify_customers (
    customer_id text,
    email text,
    first_name text,
    last_name text,
    state text, -- disabled, invited, enabled, declined
    country_code text, -- of the default address
    email_marketing_state text, -- email_marketing_consent.state (subscribed, not_subscribed, unsubscribed, ...)
    created_at text,
    updated_at text, -- ISO 8601 with the shop's offset; the incremental pull's cursor
    payload jsonb not null, -- the customer resource as received
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shopify_customers__batch on raw.shopify_customers (_batch_id)
;;
create index if not exists shopify_customers__version on raw.shopify_customers (customer_id, updated_at)
