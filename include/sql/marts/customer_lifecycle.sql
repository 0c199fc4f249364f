-- grain: one row per CRM contact per as-of date
-- materialized: model
-- Lifecycle stage from order timing (thresholds in days come from martech.models.lifecycle.THRESHOLDS):
--   prospect     no completed order yet
--   new          first order within new_days
--   reactivated  last order within active_days after a gap longer than lapsed_days
--   active       last order within active_days
--   at_risk      last order within at_risk_days
--   lapsed       last order within churned_days
--   churned      no order for churned_days or more
create table if not exists marts.customer_lifecycle (
    as_of_date date not null,  -- Orders before this date were used
    contact_id text not null,  -- CRM contact id
    customer_id bigint,  -- Shop customer id (null for prospects without a shop account)
    lifecycle_stage text not null,  -- prospect, new, active, reactivated, at_risk, lapsed or churned
    days_since_last_order integer,  -- Days from the last completed order to the as-of date
    previous_gap_days integer,  -- Days between the last two completed orders
    primary key (as_of_date, contact_id)
)
;;
delete from marts.customer_lifecycle
where as_of_date = %(run_date)s::date
;;
insert into marts.customer_lifecycle
with

contacts as (
    select * from staging.contacts
),

orders as (
    select
        customer_id,
        order_date,
        lag(order_date) over (partition by customer_id order by order_date, order_id) as previous_date,
        row_number() over (partition by customer_id order by order_date desc, order_id desc) as recency_rank
    from staging.orders
    where status = 'completed' and order_ts < %(run_date)s::date
),

firsts as (
    select
        customer_id,
        min(order_date) as first_date
    from orders
    group by customer_id
),

latest as (
    select
        orders.customer_id,
        firsts.first_date,
        %(run_date)s::date - orders.order_date as days_since_last_order,
        orders.order_date - orders.previous_date as previous_gap_days
    from orders
    inner join firsts on orders.customer_id = firsts.customer_id
    where orders.recency_rank = 1
),

final as (
    select
        %(run_date)s::date as as_of_date,
        contacts.contact_id,
        contacts.customer_id,
        case
            when latest.customer_id is null then 'prospect'
            when %(run_date)s::date - latest.first_date <= %(new_days)s then 'new'
            when
                latest.days_since_last_order <= %(active_days)s
                and latest.previous_gap_days > %(lapsed_days)s
                then 'reactivated'
            when latest.days_since_last_order <= %(active_days)s then 'active'
            when latest.days_since_last_order <= %(at_risk_days)s then 'at_risk'
            when latest.days_since_last_order < %(churned_days)s then 'lapsed'
            else 'churned'
        end as lifecycle_stage,
        latest.days_since_last_order,
        latest.previous_gap_days
    from contacts
    left join latest on contacts.customer_id = latest.customer_id
)

select * from final
