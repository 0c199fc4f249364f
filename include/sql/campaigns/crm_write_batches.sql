-- grain: one row per batch upsert request planned by a write-back run
-- materialized: table
-- Written by martech.crm.writeback: a run first plans every changed value into batches of at most 100
-- inputs (one transaction), then sends them in order, marking each sent in the transaction that records
-- its values in campaigns.crm_property_writes. A run stopped half-way leaves its unsent batches pending;
-- the next run sends those before it plans anything new, so no input is sent twice.
create table if not exists campaigns.crm_write_batches (
    batch_id text not null, -- <run date>:<sequence>, e.g. 2026-05-04:0003
    run_date date not null, -- Run that planned it
    seq integer not null, -- Order of sending within the run
    inputs jsonb not null, -- The request's inputs (idProperty, id, properties), as sent (personal data)
    n_inputs integer not null, -- Number of inputs (at most 100; 0 when every address was erased before sending)
    status text not null default 'pending', -- pending or sent
    planned_at timestamptz not null, -- When the run planned it
    sent_at timestamptz, -- When the CRM acknowledged it
    constraint crm_write_batches_pkey primary key (batch_id),
    constraint crm_write_batches_status_check check (status in ('pending', 'sent')),
    constraint crm_write_batches_size_check check (n_inputs between 0 and 100)
)
;;
create index if not exists crm_write_batches__pending on campaigns.crm_write_batches (status, run_date, seq)
