-- grain: one row per day carts were created, before the as-of date
-- materialized: model
-- Abandonment rate = abandoned / (abandoned + converted): carts still open have not decided yet.
create table if not exists kpis.cart_abandonment_daily (
    cart_date date not null primary key,  -- UTC date the carts were created
    carts integer not null,  -- Carts created
    converted integer not null,  -- Of those, bought
    abandoned integer not null,  -- Of those, abandoned
    still_open integer not null,  -- Of those, still open
    abandonment_rate numeric(8, 6),  -- abandoned / (abandoned + converted)
    abandoned_value numeric(14, 2) not null,  -- Value of the abandoned carts
    as_of_date date not null  -- Data before this date was used
)
;;
truncate kpis.cart_abandonment_daily
;;
insert into kpis.cart_abandonment_daily
with

carts as (
    select
        (created_at at time zone 'UTC')::date as cart_date,
        status,
        cart_value
    from staging.carts
    where created_at < %(run_date)s::date
),

final as (
    select
        cart_date,
        count(*) as carts,
        count(*) filter (where status = 'converted') as converted,
        count(*) filter (where status = 'abandoned') as abandoned,
        count(*) filter (where status = 'open') as still_open,
        round(
            count(*) filter (where status = 'abandoned')::numeric
            / nullif(count(*) filter (where status in ('abandoned', 'converted')), 0), 6
        ) as abandonment_rate,
        coalesce(sum(cart_value) filter (where status = 'abandoned'), 0) as abandoned_value,
        %(run_date)s::date as as_of_date
    from carts
    group by cart_date
)

select * from final
