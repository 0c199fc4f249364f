-- grain: one row per RFM as-of date and segment
-- materialized: model
-- Segment sizes over time from the daily RFM snapshots in marts.customer_rfm (segments: docs/rfm-segments.md).
create table if not exists kpis.rfm_segments (
    as_of date not null,  -- As-of date of the RFM snapshot
    segment text not null,  -- RFM segment
    customers integer not null,  -- Customers in the segment
    share numeric(8, 6) not null,  -- customers / customers scored on that date
    monetary numeric(14, 2) not null,  -- Net revenue to date of the segment's customers
    as_of_date date not null,  -- Data before this date was used
    primary key (as_of, segment)
)
;;
truncate kpis.rfm_segments
;;
insert into kpis.rfm_segments
with

snapshots as (
    select * from marts.customer_rfm
    where as_of_date <= %(run_date)s::date
),

final as (
    select
        as_of_date as as_of,
        segment,
        count(*) as customers,
        round(count(*)::numeric / sum(count(*)) over (partition by as_of_date), 6) as share,
        sum(monetary) as monetary,
        %(run_date)s::date as as_of_date
    from snapshots
    group by as_of_date, segment
)

select * from final
