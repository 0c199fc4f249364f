-- grain: one row per contact, campaign run and reason the contact was left out of the audience
-- materialized: table
-- Written by martech.campaigns.audience.build_snapshot together with audience_members (the run's rows
-- are deleted and copied in again in one transaction). Every row the audience SQL returned is either a
-- member or has at least one row here, so "why did contact 4711 not get the birthday mail?" is:
--   select * from audiences.exclusions where campaign_id = 'birthday' and contact_id = '4711'
create table if not exists audiences.exclusions (
    campaign_id text not null, -- Campaign
    run_id text not null, -- Campaign run
    run_date date not null, -- Run date
    contact_id text not null, -- CRM contact id
    email text,  -- Trimmed and lower-cased as returned by the audience SQL; null when missing
    reason text not null,  -- Why the contact was left out (see the check constraint and docs/campaigns.md)
    detail text,  -- consent status, suppression reason, kept contact id, last send, the mails counted, the order
    step integer, -- Step of a series the row belongs to (1 for single messages)
    series_key text, -- Hourly series: the pass through the series (e.g. the cart id) this decision is about
    constraint exclusions_pkey primary key (campaign_id, run_id, contact_id, reason),
    constraint exclusions_reason_check check (reason in (
        'converted', 'missing_email', 'invalid_email', 'no_consent', 'suppressed', 'duplicate_email', 'cooldown',
        'frequency_cap'
    ))
)
;;
alter table audiences.exclusions add column if not exists step integer
;;
alter table audiences.exclusions add column if not exists series_key text
;;
-- Warehouses created before 'converted' existed get the wider check once (a no-op afterwards).
do $$
begin
    if not exists (
        select 1 from pg_constraint
        where conrelid = 'audiences.exclusions'::regclass and conname = 'exclusions_reason_check'
            and position('converted' in pg_get_constraintdef(oid)) > 0
    ) then
        alter table audiences.exclusions drop constraint if exists exclusions_reason_check;
        alter table audiences.exclusions add constraint exclusions_reason_check check (reason in (
            'converted', 'missing_email', 'invalid_email', 'no_consent', 'suppressed', 'duplicate_email',
            'cooldown', 'frequency_cap'
        ));
    end if;
end
$$
;;
create index if not exists exclusions__series on audiences.exclusions (campaign_id, step, series_key)
where series_key is not null
;;
create index if not exists exclusions__contact on audiences.exclusions (contact_id, campaign_id)
;;
create index if not exists exclusions__run_date on audiences.exclusions (campaign_id, run_date)
