-- grain: one row per customer per as-of date
-- materialized: table
-- Written by martech.models.clv.build_clv_predictions (BG/NBD + Gamma-Gamma fitted on all customers at each
-- as-of date), which replaces one as_of at a time in a single transaction. Method: docs/clv.md.
create table if not exists marts.clv_predictions (
    as_of date not null, -- Exclusive as-of date: orders placed before its midnight (UTC) are used
    customer_id bigint not null, -- Shop customer id (staging.orders.customer_id)
    contact_id text, -- CRM contact linked to the customer (staging.contacts.customer_id), if any
    frequency integer not null, -- Repeat purchase days (days with an order after the first one)
    recency_days integer not null, -- Days from the first to the last purchase day (BG/NBD t_x)
    t_days integer not null, -- Days from the first purchase day to the as-of date (BG/NBD T)
    monetary_avg numeric(14, 2) not null, -- Mean net value of the repeat purchase days (0 without repeats)
    p_alive double precision not null, -- Probability the customer is still active (BG/NBD)
    churn_risk text not null check (churn_risk in ('low', 'medium', 'high')), -- Band of p_alive: high < 0.3 <= medium < 0.7 <= low
    expected_purchases double precision not null, -- Expected purchase days in the next horizon_days
    expected_revenue numeric(14, 2) not null, -- expected_purchases times the Gamma-Gamma expected order value
    horizon_days integer not null, -- Length of the prediction horizon in days
    expected_next_order_date date, -- as_of plus the expected gap between purchases; null when under one a year
    model_version text not null, -- Code version and fitted parameters, e.g. bgnbd-gg-1 r=0.24 alpha=4.4 ...
    primary key (as_of, customer_id)
)
