-- grain: one row per campaign goal per as-of date
-- materialized: table
-- Written by martech.kpis.goals.build_goals in the kpis stage: each campaign YAML that states a goal (kpi,
-- target, deadline) gets the KPI's value as of the run date and its progress towards the target. Formulas per
-- KPI: docs/kpis.md, "Campaign goals". A rebuild replaces the as_of_date's rows.
create table if not exists kpis.campaign_goals (
    as_of_date date not null, -- Data before this date was used
    campaign_id text not null, -- The campaign whose YAML states the goal
    kpi text not null, -- One of martech.campaigns.spec.GOAL_KPIS
    kpi_description text not null, -- What the KPI measures, in words
    target double precision not null, -- The value the goal asks for, in the KPI's unit
    deadline date not null, -- The date by which the target should be reached
    value double precision, -- The KPI as of as_of_date; null while there is nothing to measure yet
    progress double precision, -- value / target (1 or more: reached); null with value
    days_left integer not null, -- deadline - as_of_date (negative once the deadline has passed)
    status text not null check (status in ('achieved', 'on_the_way', 'missed', 'no_data')), -- achieved: value >= target; missed: deadline passed without; no_data: no value yet
    primary key (as_of_date, campaign_id)
)
