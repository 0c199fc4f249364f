-- grain: one row per campaign run (campaign, run date)
-- materialized: table
-- What each run was: the definition it used, its audience and dispatch counts, and the attribution
-- window the KPIs apply to it.
create table if not exists campaigns.campaign_runs (
    campaign_id text not null,
    run_id text not null,
    run_date date not null,
    definition_hash text not null,  -- sha256 of the campaign YAML and its audience SQL used by the run
    conversion_window_days integer not null,  -- Attribution window the KPIs apply to this run
    members integer not null,
    treatment integer not null,
    holdout integer not null,
    sent integer not null,
    transport text not null,  -- outbox, smtp or sendgrid
    primary key (campaign_id, run_id)
)
