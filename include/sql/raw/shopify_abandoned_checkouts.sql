-- grain: one row per Shopify abandoned checkout version received in a batch
-- materialized: table
-- Landing table for the Shopify Admin REST API (checkouts.json): text as received plus the whole
-- resource (line items included) in payload. A version is (checkout_id, updated_at).
create table if not exists raw.shopify_abandoned_checkouts (
    checkout_id text,
    token text,
    customer_id text, -- customer.id; null when the buyer gave only an e-mail
    email text,
    currency text,
    total_price text,
    completed_at text, -- set once the checkout became an order (recovered)
    abandoned_checkout_url text,
    created_at text,
    updated_at text, -- the incremental pull's cursor
    payload jsonb not null, -- the checkout resource as received
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shopify_abandoned_checkouts__batch on raw.shopify_abandoned_checkouts (_batch_id)
;;
create index if not exists shopify_abandoned_checkouts__version on raw.shopify_abandoned_checkouts (checkout_id, updated_at)
