-- grain: one row per Shopify abandoned checkout version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table for the Shopify Admin REST API (checkouts.json): text as received plus the whole
-- resource (line items included) in payload. A version is (checkout_id, updated_at).
create table if not exists raw.shopify_abandoned_checkouts (
    checkout_id text, -- Shopify checkout id
    token text, -- Checkout token
    customer_id text, -- customer.id; null when the buyer gave only an e-mail
    email text, -- Buyer's address (personal data)
    currency text, -- ISO currency code
    total_price text, -- Checkout total
    completed_at text, -- set once the checkout became an order (recovered)
    abandoned_checkout_url text, -- Recovery link (personal data)
    created_at text, -- When the checkout started
    updated_at text, -- the incremental pull's cursor
    payload jsonb not null -- the checkout resource as received
)
;;
create index if not exists shopify_abandoned_checkouts__version on raw.shopify_abandoned_checkouts (checkout_id, updated_at)
