-- grain: one row per campaign run
-- materialized: table
-- Written by martech.campaigns.audience.build_snapshot in the same transaction as the run's members and
-- exclusions: what the snapshot was built from (definition, settings, input batches), what it holds,
-- and whether the holdout is large enough to measure the uplift the campaign hopes for.
create table if not exists audiences.snapshots (
    campaign_id text not null, -- Campaign
    run_id text not null, -- Campaign run
    run_date date not null, -- Run date
    definition_hash text not null,  -- sha256 of the campaign YAML and audience SQL used
    priority integer not null,  -- Lower number = higher priority in the frequency cap
    cooldown_days integer not null,  -- The campaign's cooldown (0 = none)
    frequency_cap integer,  -- Max marketing emails per contact in the window (null = no cap)
    frequency_cap_window_days integer not null,  -- Days of the cap window, the run date included
    candidates integer not null,  -- Rows returned by the audience SQL
    members integer not null,  -- Eligible contacts (audience_members rows)
    treatment integer not null, -- Members in the treatment arm
    holdout integer not null, -- Members held out (not mailed)
    excluded integer not null,  -- Distinct contacts in audiences.exclusions for the run
    exclusions jsonb not null default '{}'::jsonb,  -- Excluded contacts per reason
    coupons integer not null default 0,  -- Coupons held by the run's members in campaigns.coupons
    holdout_share numeric(6, 4) not null, -- Share of members held out
    baseline_conversion numeric(8, 6) not null,  -- Conversion rate assumed without the message
    min_detectable_effect numeric(8, 6),  -- Absolute uplift the campaign wants to detect (null = not set)
    mde numeric(8, 6),  -- Smallest absolute uplift detectable at alpha 0.05, power 0.8 (null = none)
    power_warning boolean not null,  -- True when min_detectable_effect is below the achievable mde
    input_loaded_at timestamptz,  -- Latest raw.ingest_batches.loaded_at the run's staging includes
    input_batch_ids jsonb not null default '{}'::jsonb,  -- Latest batch id per landing table
    constraint snapshots_pkey primary key (campaign_id, run_id)
)
;;
create index if not exists snapshots__run_date on audiences.snapshots (run_date)
