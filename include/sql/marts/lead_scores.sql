-- grain: one row per open lead per as-of date
-- materialized: table
-- Written by martech.models.leads.build_lead_scores: the open leads (CRM contacts with lead properties and no
-- shop customer yet) scored by the model version named on each row. Method: docs/models.md.
create table if not exists marts.lead_scores (
    as_of date not null, -- The run date the leads were scored for (data before its midnight UTC)
    contact_id text not null, -- CRM contact (staging.contacts.contact_id)
    score double precision not null check (score between 0 and 1), -- Calibrated probability of becoming a customer
    tier text not null check (tier in ('A', 'B', 'C', 'D')), -- A >= 0.6 > B >= 0.35 > C >= 0.15 > D
    method text not null check (method in ('model', 'points')), -- model: calibrated classifier; points: activity points with decay
    model_version text not null, -- Version of the stored model artifact (MARTECH_HOME/models/lead_score/<version>)
    primary key (as_of, contact_id)
)
