-- grain: one row per seed send (campaign, run, step, variant, seed address)
-- materialized: table
-- Written by martech.campaigns.seeds: the internal test addresses of _settings.yml (seed_list) receive every
-- variant of every real send. A row exists (pending) before its message is handed to the transport and a
-- rerun never adds a second one, so each seed gets each variant of a run once. Never read by the KPIs, the
-- frequency cap or the cooldowns: seed sends are not sends to contacts.
create table if not exists campaigns.seed_sends (
    send_id text not null, -- left(sha256('seed'|campaign_id|run_id|step|variant|email), 32 hex); X-Martech-Send-Id
    campaign_id text not null, -- The campaign (its YAML id)
    run_id text not null, -- The campaign run (a date, or an hour for an hourly series)
    step integer not null, -- The step of the series (1 for single mails)
    variant text not null, -- The A/B variant the seed received
    email text not null, -- The seed address, trimmed and lower-cased
    status text not null default 'pending', -- pending (in doubt when attempts > 0), sent, failed, skipped
    transport text, -- outbox, smtp or sendgrid
    message_id text, -- The transport's message id once accepted
    attempts integer not null default 0, -- Incremented and committed before each hand-over to the transport
    attempt_ref text, -- Provider reference of the last attempt, set before the request
    error text, -- Why the last attempt failed (no personal data)
    created_at timestamptz not null, -- The run's timestamp
    sent_at timestamptz, -- The run's timestamp when the transport accepted the message
    constraint seed_sends_pkey primary key (send_id),
    constraint seed_sends_send_key unique (campaign_id, run_id, step, variant, email),
    constraint seed_sends_status_check check (status in ('pending', 'sent', 'failed', 'skipped'))
)
