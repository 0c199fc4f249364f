-- grain: one row per campaign, step, period (each send day, and all send days), tested group and control
-- materialized: table
-- Written by martech.kpis.uplift from campaigns.member_outcomes at every KPI run (truncated and filled in
-- one transaction). treatment '*' against control 'holdout' is the campaign's effect; a variant against
-- 'holdout' is that variant's; a variant against another variant is the A/B comparison. Intervals are 95 %.
-- Formulas and sources: docs/kpis.md.
create table if not exists kpis.campaign_uplift (
    campaign_id text not null,  -- Campaign id
    step integer not null,  -- Step of a series (1 for single messages)
    period text not null,  -- day (one send day) or all (every send day pooled)
    period_start date not null,  -- First send day covered
    period_end date not null,  -- Last send day covered
    treatment text not null,  -- Tested group: * (every treatment variant) or a variant id
    control text not null,  -- holdout or another variant id
    treatment_n integer not null,  -- Members in the tested group
    control_n integer not null,  -- Members in the control group
    treatment_conversions integer not null,  -- Tested members who converted within the attribution window
    control_conversions integer not null,  -- Control members who converted within the attribution window
    treatment_rate double precision not null,  -- treatment_conversions / treatment_n
    control_rate double precision not null,  -- control_conversions / control_n
    uplift double precision not null,  -- Absolute uplift: treatment_rate − control_rate
    uplift_low double precision not null,  -- 95 % interval of the uplift, lower end (Newcombe hybrid score)
    uplift_high double precision not null,  -- 95 % interval of the uplift, upper end
    relative_uplift double precision,  -- treatment_rate / control_rate − 1 (null without conversions in an arm)
    relative_uplift_low double precision,  -- 95 % interval, lower end (delta method on the log ratio)
    relative_uplift_high double precision,  -- 95 % interval, upper end
    p_value double precision,  -- Two-sided pooled two-proportion z-test of equal rates
    incremental_conversions double precision not null,  -- uplift × treatment_n
    incremental_conversions_low double precision not null,  -- uplift_low × treatment_n
    incremental_conversions_high double precision not null,  -- uplift_high × treatment_n
    treatment_revenue_per_member double precision not null,  -- Mean window revenue per tested member
    control_revenue_per_member double precision not null,  -- Mean window revenue per control member
    revenue_uplift_per_member double precision not null,  -- Difference of the two means
    revenue_uplift_low double precision not null,  -- 95 % bootstrap percentile interval, lower end
    revenue_uplift_high double precision not null,  -- 95 % bootstrap percentile interval, upper end
    revenue_p_value double precision,  -- Welch's t-test of equal mean revenue per member
    incremental_revenue double precision not null,  -- revenue_uplift_per_member × treatment_n
    incremental_revenue_low double precision not null,  -- revenue_uplift_low × treatment_n
    incremental_revenue_high double precision not null,  -- revenue_uplift_high × treatment_n
    mde double precision,  -- Smallest absolute uplift detectable at these sizes (alpha 0.05 two-sided, power 0.8); null at a rate of 0
    min_detectable_effect double precision,  -- The uplift the campaign wants to detect (its YAML), null if unset
    adequate boolean,  -- mde <= min_detectable_effect: the test was large enough (null without a target)
    prob_better double precision not null,  -- P(tested rate > control rate), Beta(1+x, 1+n−x) posteriors
    prob_best double precision,  -- P(this variant has the highest rate of the campaign's variants); null for *
    window_complete boolean not null,  -- True when every send day's window lies before the as-of date
    as_of_date date not null,  -- Data before this date was used
    primary key (campaign_id, step, period, period_start, treatment, control)
)
;;
alter table kpis.campaign_uplift alter column mde drop not null
