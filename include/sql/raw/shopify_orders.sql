-- grain: one row per Shopify order version received in a batch
-- materialized: table
-- lineage: batch
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
    payload jsonb not null -- the order resource as received
)
;;
create index if not exists shopify_orders__version on raw.shopify_orders (order_id, updated_at)
