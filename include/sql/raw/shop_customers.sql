-- grain: one row per customer version received in a batch
-- materialized: table
-- lineage: batch
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_customers (
    customer_id text, -- Shop customer id
    email text, -- E-mail address (personal data)
    first_name text, -- First name (personal data)
    last_name text, -- Last name (personal data)
    country text, -- Country code
    created_at text, -- When the account was created
    updated_at text, -- Last change in the shop; the incremental pull's cursor
    deleted_at text -- When the account was deleted
)
