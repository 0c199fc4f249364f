-- grain: one row per distinct email event received by the event webhook (or a one-click unsubscribe)
-- materialized: table
-- Written by martech.events.store in the transaction that precedes the 2xx answer, so an event that
-- was acknowledged is stored. The ESP retries and duplicates: an event is kept once per event_key
-- (a hash of its identifying fields) and once per sg_event_id, whichever repeats.
create table if not exists raw.webhook_events (
    event_key text not null,  -- sha256 of (event, message or send id, email, timestamp, url): the composite key
    sg_event_id text,  -- The ESP's event id when the event has one
    event text,  -- Event type as received (lower case), unknown types included
    event_ts timestamptz,  -- When the event happened (the event's timestamp field), null when unreadable
    email text,  -- Recipient address, trimmed and lower-cased
    sg_message_id text,  -- The ESP's message id
    url text,  -- Clicked link (click events)
    machine_open boolean not null default false,  -- True for opens the ESP marks as machine opens (sg_machine_open)
    send_id text,  -- custom_args: the send ledger's send id
    campaign_id text,  -- custom_args: campaign id
    run_id text,  -- custom_args: campaign run id
    contact_id text,  -- custom_args: contact id
    payload jsonb not null,  -- The whole event as received, unknown fields included
    received_at timestamptz not null,  -- When the receiver stored it
    source text not null,  -- webhook (the ESP) or one_click (the unsubscribe endpoint)
    constraint webhook_events_pkey primary key (event_key)
)
;;
create unique index if not exists webhook_events__sg_event_id on raw.webhook_events (sg_event_id)
;;
create index if not exists webhook_events__send_id on raw.webhook_events (send_id)
