-- grain: one row per distinct email event (deduplicated on the ESP's event id)
-- materialized: model
-- Events arrive as feed files (raw.email_events) and through the webhook (raw.webhook_events, already
-- stored once per event); an event seen by both is kept once. Feed rows without an event id, an event or a
-- readable time go to raw.quarantine with their reason.
create table if not exists staging.email_events (
    event_id text primary key, -- Provider's event id (or a digest of the event when it has none)
    event text not null, -- delivered, open, click, bounce, unsubscribe, spamreport, ...
    event_ts timestamptz not null, -- When the event happened
    email text, -- Recipient address (personal data)
    message_id text, -- Provider's message id
    url text, -- Clicked link (click events)
    send_id text, -- The send (campaigns.send_ledger)
    campaign_id text, -- Campaign
    run_id text, -- Campaign run
    contact_id text, -- Recipient's contact id (erased people: erased:<hash>)
    machine_open boolean not null default false -- An open by a mail client's privacy proxy (Apple MPP), not by the person
)
;;
-- The KPIs and the dispatch reconcile read a send's events by send id.
create index if not exists email_events__send_id on staging.email_events (send_id)
;;
alter table staging.email_events add column if not exists machine_open boolean not null default false
;;
-- A feed row without an event id, an event name or a readable time cannot be staged: it is kept in
-- raw.quarantine with the reason (rebuilt each run, like every staging reject) instead of failing the run.
delete from raw.quarantine
where stage = 'staging' and table_name = 'raw.email_events'
;;
insert into raw.quarantine (table_name, batch_id, source_ref, received, reason, run_date, reason_code, stage, row_key)
select
    'raw.email_events',
    e._batch_id,
    e._source_file || ':' || e._line_no::text,
    e.payload::text,
    e._source_file || ' line ' || e._line_no::text || ': ' || case
        when staging.clean(e.sg_event_id) is null then 'sg_event_id is empty; an event without its id cannot be'
            || ' told from its re-deliveries: fix the feed'
        when staging.clean(e.event) is null then 'event is empty: the feed must name the event (delivered, open, ...)'
        else 'timestamp ' || coalesce(quote_literal(e.event_timestamp), 'is empty')
            || ' is not a Unix time in seconds nor an ISO 8601 timestamp: fix the feed'
    end,
    %(run_date)s,
    case
        when staging.clean(e.sg_event_id) is null then 'invalid_key'
        when staging.clean(e.event) is null then 'missing_event'
        else 'invalid_timestamp'
    end,
    'staging',
    e.sg_event_id
from raw.email_events as e
where
    e._loaded_at <= %(run_ts)s
    and (
        staging.clean(e.sg_event_id) is null or staging.clean(e.event) is null
        or staging.event_time(e.event_timestamp) is null
    )
;;
truncate staging.email_events
;;
insert into staging.email_events
with

files as (
    select
        sg_event_id as event_id,
        lower(event) as event,
        staging.event_time(event_timestamp) as event_ts,
        lower(trim(email)) as email,
        sg_message_id as message_id,
        url,
        send_id,
        campaign_id,
        run_id,
        contact_id,
        coalesce(payload ->> 'sg_machine_open', 'false') = 'true' as machine_open,
        _loaded_at as loaded_at,
        _source_file || ':' || lpad(_line_no::text, 9, '0') as position
    from raw.email_events
    where
        _loaded_at <= %(run_ts)s and staging.clean(sg_event_id) is not null and staging.clean(event) is not null
        and staging.event_time(event_timestamp) is not null
),

webhook as (
    -- Already once per event; an event may only be dated after the run's cutoff.
    select
        coalesce(sg_event_id, event_key) as event_id,
        event,
        event_ts,
        email,
        sg_message_id as message_id,
        url,
        send_id,
        campaign_id,
        run_id,
        contact_id,
        machine_open,
        received_at as loaded_at,
        event_key as position
    from raw.webhook_events
    where event is not null and event_ts is not null and event_ts <= %(run_ts)s
),

final as (
    -- The ESP delivers at least once: the same event can arrive twice.
    select distinct on (event_id)
        event_id,
        event,
        event_ts,
        email,
        message_id,
        url,
        send_id,
        campaign_id,
        run_id,
        contact_id,
        machine_open
    from (
        select * from files
        union all
        select * from webhook
    ) as events
    order by event_id, loaded_at, position
)

select * from final
