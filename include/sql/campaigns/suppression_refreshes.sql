-- grain: one row per run date of the email-events stage
-- materialized: table
-- Written by martech.pipeline.ingest_events after merging the run's unsubscribes, bounces and spam
-- reports into campaigns.suppressions; the freshness gate of a campaign run reads the latest run date.
create table if not exists campaigns.suppression_refreshes (
    run_date date primary key, -- Events before this date's midnight (UTC) were merged
    added integer not null, -- Suppressions the refresh added
    refreshed_at timestamptz not null -- The run's cutoff (not the wall clock)
)
