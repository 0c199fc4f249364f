-- grain: one row per Shopify customer version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table for the Shopify Admin REST API (customers.json): text as received plus the whole
-- resource in payload. A version is (customer_id, updated_at).
create table if not exists raw.shopify_customers (
    customer_id text, -- Shopify customer id
    email text, -- E-mail address (personal data)
    first_name text, -- First name (personal data)
    last_name text, -- Last name (personal data)
    state text, -- disabled, invited, enabled, declined
    country_code text, -- of the default address
    email_marketing_state text, -- email_marketing_consent.state (subscribed, not_subscribed, unsubscribed, ...)
    created_at text, -- When the customer was created
    updated_at text, -- ISO 8601 with the shop's offset; the incremental pull's cursor
    payload jsonb not null -- the customer resource as received
)
;;
create index if not exists shopify_customers__version on raw.shopify_customers (customer_id, updated_at)
