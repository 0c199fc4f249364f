-- grain: one row per contact of a campaign run's treatment arm rendered in a dry run
-- materialized: table
-- Written by martech.campaigns.dispatch.dry_run: what a real send would do, without sending or planning
-- ledger rows. A new dry run of the same run and step replaces the earlier one.
create table if not exists campaigns.dry_runs (
    campaign_id text not null, -- Campaign
    run_id text not null, -- Campaign run
    step integer not null, -- Step of a series (1 otherwise)
    contact_id text not null, -- CRM contact id
    email text not null, -- Address a real send would go to (personal data)
    variant text not null, -- A/B variant
    outcome text not null check (outcome in ('would_send', 'render_failed', 'suppressed')), -- What a real send would do
    subject text, -- Rendered subject line (null when rendering failed)
    detail text, -- Render error or suppression reason
    change text not null check (change in ('added', 'kept')), -- Versus the previous run's audience
    created_at timestamptz not null, -- The run's timestamp
    primary key (campaign_id, run_id, step, contact_id)
)
