-- grain: one row per campaign run (campaign, run date)
-- materialized: table
-- What each run was: the definition it used, its audience and dispatch counts, and the attribution
-- window the KPIs apply to it.
create table if not exists campaigns.campaign_runs (
    campaign_id text not null, -- Campaign
    run_id text not null, -- Campaign run
    run_date date not null, -- Run date
    definition_hash text not null,  -- sha256 of the campaign YAML and its audience SQL used by the run
    conversion_window_days integer not null,  -- Attribution window the KPIs apply to this run
    members integer not null, -- Audience members of the run
    treatment integer not null, -- Members in the treatment arm
    holdout integer not null, -- Members held out
    sent integer not null, -- Sends with status sent
    transport text not null,  -- outbox, smtp or sendgrid
    dispatch_state text, -- complete, or incomplete: rows in doubt, to retry or newly given up (the dispatch task failed; a rerun settles them)
    in_doubt integer, -- Ledger rows handed over with no known outcome after the last dispatch (never resent blindly)
    retrying integer, -- Ledger rows not sent yet that a later dispatch retries (back-off until next_attempt_at)
    abandoned integer, -- Ledger rows given up after failing past the retry deadline (24 hours): reported, resent only by a person
    next_attempt_at timestamptz, -- When the earliest send still pending may be retried (null = none pending)
    primary key (campaign_id, run_id)
)
;;
alter table campaigns.campaign_runs add column if not exists dispatch_state text
;;
alter table campaigns.campaign_runs add column if not exists in_doubt integer
;;
alter table campaigns.campaign_runs add column if not exists retrying integer
;;
alter table campaigns.campaign_runs add column if not exists abandoned integer
;;
alter table campaigns.campaign_runs add column if not exists next_attempt_at timestamptz
