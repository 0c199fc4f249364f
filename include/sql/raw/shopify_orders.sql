-- grain: one row per Shopify order version received in a batch
-- materialized: table
-- Landing table for the Shopify Admin REST API (orders.json, status=any): text as received plus the
-- whole resource (line items included) in payload. A version is (order_id, updated_at).
create table if not exists raw.shopify_orders (
    order_id text,
    customer_id text, -- customer.id; null for guest checkouts
    name text, -- the shop-facing order number, e.g. #1001
    email text,
    financial_status text,
    fulfillment_status text,
    cancelled_at text,
    currency text,
    total_price text,
    total_discounts text,
    discount_code text, -- the first of discount_codes
    processed_at text,
    created_at text,
    updated_at text, -- the incremental pull's cursor
    payload jsonb not null, -- the order resource as received
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists shopify_orders__batch on raw.shopify_orders (_batch_id)
;;
create index if not exists shopify_orders__version on raw.shopify_orders (order_id, updated_at)
