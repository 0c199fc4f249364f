-- grain: one row per Shopify order version received in a batch
-- materialized: table
-- Landing table for the Shopify Admin REST API (orders.json, status=any): text as received plus the
-- whole resource (line items included) in payload. A version is (order_id, updated_at).
create table if not exists raw.shopify_orders (
    order_id text, -- Shopify order id
    customer_id text, -- customer.id; null for guest checkouts
    name text, -- the shop-facing order number, e.g. #1001
    email text, -- Buyer's address (personal data)
    financial_status text, -- paid, refunded, ...
    fulfillment_status text, -- fulfilled, partial or null
    cancelled_at text, -- When the order was cancelled
    currency text, -- ISO currency code
    total_price text, -- Order total
    total_discounts text, -- Discounts applied
    discount_code text, -- the first of discount_codes
    processed_at text, -- When the order was processed
    created_at text, -- When the order was created
    updated_at text, -- the incremental pull's cursor
    payload jsonb not null, -- the order resource as received
    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)
    _source text not null, -- Source that sent the row, as named in include/sources.yml
    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff
)
;;
create index if not exists shopify_orders__batch on raw.shopify_orders (_batch_id)
;;
create index if not exists shopify_orders__version on raw.shopify_orders (order_id, updated_at)
