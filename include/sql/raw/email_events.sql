-- grain: one row per email event received (SendGrid event-webhook shape), duplicates included
-- materialized: table
-- The whole event is kept in payload; the fields the pipeline joins on are copied out as text.
create table if not exists raw.email_events (
    sg_event_id text,
    event text,
    email text,
    event_timestamp text,
    sg_message_id text,
    url text,
    send_id text,
    campaign_id text,
    run_id text,
    contact_id text,
    payload jsonb not null,
    _source_file text not null,
    _line_no integer not null,
    _batch_id text not null,
    _source text not null,
    _loaded_at timestamptz not null
)
;;
create index if not exists email_events__batch on raw.email_events (_batch_id)
