-- grain: one row per intended send (campaign, run, step, contact)
-- materialized: table
-- Written by martech.campaigns.dispatch: a row exists (pending) before its message is handed to a
-- transport, and a rerun never adds a second row for the same send, so every recipient is sent once.
create table if not exists campaigns.send_ledger (
    send_id text not null, -- left(sha256(campaign_id|run_id|step|contact_id), 32 hex): deterministic; sent as custom arg / X-Martech-Send-Id
    campaign_id text not null, -- Campaign
    run_id text not null, -- Campaign run
    step integer not null default 1, -- Step of a multi-step flow (1 for single sends)
    contact_id text not null, -- Recipient's contact id (erased people: erased:<hash>)
    email text not null, -- Recipient address (personal data)
    variant text not null, -- A/B variant sent
    status text not null default 'pending', -- pending (planned, or in doubt when attempts > 0), sent, failed (transport error), skipped (suppressed or left the audience after planning; reason in error)
    transport text, -- outbox, smtp or sendgrid
    message_id text, -- Provider's message id
    attempts integer not null default 0, -- Incremented and committed before each hand-over to the transport
    attempt_ref text, -- Provider reference of the last attempt (SendGrid: batch_id@send_at), set before the request
    error text, -- Last error of a failed attempt
    created_at timestamptz not null, -- When the row was planned (the run's timestamp)
    sent_at timestamptz, -- The run's timestamp when the transport accepted the message
    first_attempt_at timestamptz, -- Wall-clock time of the first hand-over (or render failure): a row still failing a day later is given up
    next_attempt_at timestamptz, -- Not before: back-off of a failed row (Retry-After when longer), or when the provider's records of an in-doubt attempt are complete
    constraint send_ledger_pkey primary key (send_id),
    constraint send_ledger_send_key unique (campaign_id, run_id, step, contact_id),
    constraint send_ledger_status_check check (status in ('pending', 'sent', 'failed', 'skipped'))
)
;;
alter table campaigns.send_ledger add column if not exists attempt_ref text
;;
alter table campaigns.send_ledger add column if not exists first_attempt_at timestamptz
;;
alter table campaigns.send_ledger add column if not exists next_attempt_at timestamptz
