-- grain: one row per email address suppressed
-- materialized: table
-- Every campaign excludes these addresses (and their contact ids) when snapshotting and again just
-- before sending. Emails are stored trimmed and lower-cased.
create table if not exists campaigns.suppressions (
    email text not null, -- Suppressed address, lower case (personal data)
    contact_id text, -- Contact it belonged to
    reason text not null,
    source text,
    created_at timestamptz not null, -- When it was first recorded
    constraint suppressions_pkey primary key (email),
    constraint suppressions_email_check check (email = lower(btrim(email)) and email <> ''),
    constraint suppressions_reason_check check (reason in ('unsubscribe', 'bounce', 'spamreport', 'manual', 'sunset'))
)
;;
-- Warehouses created before 'sunset' existed get the wider check once (a no-op afterwards).
do $$
begin
    if not exists (
        select 1 from pg_constraint
        where conrelid = 'campaigns.suppressions'::regclass and conname = 'suppressions_reason_check'
            and position('sunset' in pg_get_constraintdef(oid)) > 0
    ) then
        alter table campaigns.suppressions drop constraint if exists suppressions_reason_check;
        alter table campaigns.suppressions add constraint suppressions_reason_check check (
            reason in ('unsubscribe', 'bounce', 'spamreport', 'manual', 'sunset')
        );
    end if;
end
$$
;;
create index if not exists suppressions__contact_id on campaigns.suppressions (contact_id)
;;
comment on column campaigns.suppressions.reason is 'unsubscribe, bounce, spamreport, manual or sunset (a campaign''s sunset_after unanswered sends)'
;;
comment on column campaigns.suppressions.source is
'Where the suppression came from (e.g. email_events, crm, an operator''s name)'
