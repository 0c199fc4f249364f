-- grain: one row per email event received (SendGrid event-webhook shape), duplicates included
-- materialized: table
-- lineage: file
-- The whole event is kept in payload; the fields the pipeline joins on are copied out as text.
create table if not exists raw.email_events (
    sg_event_id text, -- Provider's event id (SendGrid sg_event_id)
    event text, -- Event type: delivered, open, click, bounce, ...
    email text, -- Recipient address (personal data)
    event_timestamp text, -- Event time, Unix seconds
    sg_message_id text, -- Provider's message id
    url text, -- Clicked link (click events)
    send_id text, -- custom_args.send_id: the send (campaigns.send_ledger)
    campaign_id text, -- custom_args.campaign_id
    run_id text, -- custom_args.run_id
    contact_id text, -- custom_args.contact_id
    payload jsonb not null -- The whole event as received (personal data: the address)
)
