-- grain: one row per as-of date, previous segment and current segment
-- materialized: model
-- How customers moved between RFM segments since the previous snapshot in marts.customer_rfm.
-- Customers new since then come from '(none)'; customers without orders in the window go to '(none)'.
create table if not exists marts.segment_migration (
    as_of_date date not null,  -- The current snapshot
    previous_as_of_date date not null,  -- The snapshot compared against
    from_segment text not null,  -- Segment in the previous snapshot, or (none)
    to_segment text not null,  -- Segment in the current snapshot, or (none)
    customers integer not null,  -- Customers who made this move
    primary key (as_of_date, from_segment, to_segment)
)
;;
delete from marts.segment_migration
where as_of_date = %(run_date)s::date
;;
insert into marts.segment_migration
with

previous_date as (
    select max(as_of_date) as as_of_date
    from marts.customer_rfm
    where as_of_date < %(run_date)s::date
),

current_snapshot as (
    select
        customer_id,
        segment
    from marts.customer_rfm
    where as_of_date = %(run_date)s::date
),

previous_snapshot as (
    select
        rfm.customer_id,
        rfm.segment
    from marts.customer_rfm as rfm
    inner join previous_date on rfm.as_of_date = previous_date.as_of_date
),

moves as (
    select
        coalesce(previous_snapshot.segment, '(none)') as from_segment,
        coalesce(current_snapshot.segment, '(none)') as to_segment
    from current_snapshot
    full outer join previous_snapshot on current_snapshot.customer_id = previous_snapshot.customer_id
),

final as (
    select
        %(run_date)s::date as as_of_date,
        previous_date.as_of_date as previous_as_of_date,
        moves.from_segment,
        moves.to_segment,
        count(*) as customers
    from moves
    cross join previous_date
    where previous_date.as_of_date is not null
    group by previous_date.as_of_date, moves.from_segment, moves.to_segment
)

select * from final
