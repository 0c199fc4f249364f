-- grain: one row per contact per campaign run
-- materialized: table
-- Written by martech.campaigns.audience.build_snapshot: the run's rows are deleted and copied in again
-- in one transaction, so a rerun with the same inputs leaves identical rows.
create table if not exists audiences.audience_members (
    campaign_id text not null, -- Campaign (include/campaigns/<id>.yml)
    run_id text not null, -- The run's identity within the campaign: the run date (YYYY-MM-DD) for daily campaigns, YYYY-MM-DDTHH for hourly series; .step<n> appended for steps after the first
    run_date date not null, -- Run date
    contact_id text not null, -- CRM contact id (erased people: erased:<hash>)
    email text not null, -- Address the send goes to (personal data)
    first_name text, -- First name for the greeting (personal data)
    arm text not null, -- treatment (is sent) or holdout (never sent); from sha256(campaign_id:salt:contact_id), stable across reruns
    variant text not null, -- A/B variant id from the same hash; holdout rows carry the variant they would have got
    definition_hash text not null, -- sha256 of the campaign YAML and audience SQL the snapshot was built with
    attributes jsonb not null default '{}'::jsonb, -- Personalization columns returned by the audience SQL, by column name
    send_at timestamptz, -- Quiet hours: start of the campaign's send window on the run date, contact's time zone
    send_before timestamptz, -- End of that window (null = no window)
    send_time_arm text, -- Send-time comparison arm: sto (preferred hour) or fixed (window time); null when not optimised
    planned_send_at timestamptz, -- Send-time optimised campaigns: the instant the member is planned to be sent
    planned_hour smallint, -- Local hour (contact's time zone) of planned_send_at
    step integer, -- Step of a series the row belongs to (1 for single messages; null in rows from before steps)
    series_key text, -- Hourly series: the pass through the series (e.g. the cart id); unique per campaign and step
    constraint audience_members_pkey primary key (campaign_id, run_id, contact_id),
    constraint audience_members_arm_check check (arm in ('treatment', 'holdout'))
)
;;
-- Warehouses created before these columns existed get them once (a no-op afterwards).
alter table audiences.audience_members
add column if not exists send_at timestamptz, add column if not exists send_before timestamptz,
add column if not exists step integer, add column if not exists send_time_arm text,
add column if not exists planned_send_at timestamptz, add column if not exists planned_hour smallint,
add column if not exists series_key text
;;
create index if not exists audience_members__run_date on audiences.audience_members (campaign_id, run_date)
;;
-- A series key is decided by one run per step: however many hourly runs see the cart, one row holds it.
create unique index if not exists audience_members__series_step
on audiences.audience_members (campaign_id, step, series_key) where series_key is not null
