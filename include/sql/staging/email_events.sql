-- grain: one row per distinct email event (deduplicated on the ESP's event id)
-- materialized: model
create table if not exists staging.email_events (
    event_id text primary key,
    event text not null,
    event_ts timestamptz not null,
    email text,
    message_id text,
    url text,
    send_id text,
    campaign_id text,
    run_id text,
    contact_id text
)
;;
truncate staging.email_events
;;
insert into staging.email_events
with

source as (
    select * from raw.email_events
    where _loaded_at <= %(run_ts)s
),

final as (
    -- The ESP delivers at least once: the same event can arrive twice.
    select distinct on (sg_event_id)
        sg_event_id as event_id,
        lower(event) as event,
        to_timestamp(event_timestamp::double precision) as event_ts,
        lower(trim(email)) as email,
        sg_message_id as message_id,
        url,
        send_id,
        campaign_id,
        run_id,
        contact_id
    from source
    where sg_event_id is not null
    order by sg_event_id, _loaded_at, _source_file, _line_no
)

select * from final
