-- grain: one row per customer per as-of date
-- materialized: table
-- Written by martech.models.rfm.write_rfm (pandas scoring), which replaces one as_of_date at a time in a
-- single transaction. Readers pick a customer's latest row with as_of_date <= their run date.
-- Scores and the segment grid are documented in docs/rfm-segments.md.
create table if not exists marts.customer_rfm (
    as_of_date date not null,
    customer_id bigint not null,
    recency_days integer not null,
    frequency integer not null,
    monetary numeric(14, 2) not null,
    first_order_at timestamptz not null,
    last_order_at timestamptz not null,
    r_score smallint not null check (r_score between 1 and 5),
    f_score smallint not null check (f_score between 1 and 5),
    m_score smallint not null check (m_score between 1 and 5),
    rfm_score text not null,
    segment text not null,
    primary key (as_of_date, customer_id)
)
;;
comment on column marts.customer_rfm.as_of_date is
'The exclusive as-of date: only orders placed before its midnight (UTC) are counted'
;;
comment on column marts.customer_rfm.customer_id is 'Shop customer id (staging.orders.customer_id)'
;;
comment on column marts.customer_rfm.recency_days is
'Days from the UTC date of the last counted order to as_of_date (1 = ordered the day before)'
;;
comment on column marts.customer_rfm.frequency is 'Number of counted orders (cancelled orders excluded)'
;;
comment on column marts.customer_rfm.monetary is 'Sum of net_amount of the counted orders (refunds net out to 0)'
;;
comment on column marts.customer_rfm.first_order_at is 'Timestamp of the first counted order'
;;
comment on column marts.customer_rfm.last_order_at is 'Timestamp of the last counted order'
;;
comment on column marts.customer_rfm.r_score is
'Recency score 1..5, 5 = most recent; tie-safe percentile rank among the customers of this as_of_date'
;;
comment on column marts.customer_rfm.f_score is
'Frequency score 1..5, 5 = most orders; equal frequencies always get equal scores'
;;
comment on column marts.customer_rfm.m_score is
'Monetary score 1..5, 5 = highest spend; equal spends always get equal scores'
;;
comment on column marts.customer_rfm.rfm_score is 'r_score, f_score and m_score as three digits, e.g. 545'
;;
comment on column marts.customer_rfm.segment is
'One of 11 segments from the R vs floor((F+M)/2) grid in docs/rfm-segments.md, e.g. Champions, At Risk'
