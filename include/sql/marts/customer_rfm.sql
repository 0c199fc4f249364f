-- grain: one row per customer per as-of date
-- materialized: table
-- Written by martech.models.rfm.write_rfm (pandas scoring), which replaces one as_of_date at a time in a
-- single transaction. Readers pick a customer's latest row with as_of_date <= their run date.
-- Scores and the segment grid are documented in docs/rfm-segments.md.
create table if not exists marts.customer_rfm (
    as_of_date date not null, -- The exclusive as-of date: only orders placed before its midnight (UTC) are counted
    customer_id bigint not null, -- Shop customer id (staging.orders.customer_id)
    recency_days integer not null, -- Days from the UTC date of the last counted order to as_of_date (1 = ordered the day before)
    frequency integer not null, -- Number of counted orders (cancelled orders excluded)
    monetary numeric(14, 2) not null, -- Sum of net_amount of the counted orders (refunds net out to 0)
    first_order_at timestamptz not null, -- Timestamp of the first counted order
    last_order_at timestamptz not null, -- Timestamp of the last counted order
    r_score smallint not null check (r_score between 1 and 5), -- Recency score 1..5, 5 = most recent; tie-safe percentile rank among the customers of this as_of_date
    f_score smallint not null check (f_score between 1 and 5), -- Frequency score 1..5, 5 = most orders; equal frequencies always get equal scores
    m_score smallint not null check (m_score between 1 and 5), -- Monetary score 1..5, 5 = highest spend; equal spends always get equal scores
    rfm_score text not null, -- r_score, f_score and m_score as three digits, e.g. 545
    segment text not null, -- One of 11 segments from the R vs floor((F+M)/2) grid in docs/rfm-segments.md, e.g. Champions, At Risk
    primary key (as_of_date, customer_id)
)
