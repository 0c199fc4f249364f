-- grain: one row per customer version received in a batch
-- materialized: table
-- Landing table: every source column as text, exactly as received; typing happens in staging.
create table if not exists raw.shop_customers (
    customer_id text, -- Shop customer id
    email text, -- E-mail address (personal data)
    first_name text, -- First name (personal data)
    last_name text, -- Last name (personal data)
    country text, -- Country code
    created_at text, -- When the account was created
    updated_at text, -- Last change in the shop; the incremental pull's cursor
    deleted_at text, -- When the account was deleted
    _batch_id text not null, -- Ingest batch that landed the row (raw.ingest_batches.batch_id)
    _source text not null, -- Source that sent the row, as named in include/sources.yml
    _loaded_at timestamptz not null -- When its batch landed; staging reads the rows landed up to its run's cutoff
)
;;
create index if not exists shop_customers__batch on raw.shop_customers (_batch_id)
