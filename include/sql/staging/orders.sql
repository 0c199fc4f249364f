-- grain: one row per order (latest version received)
-- materialized: model
-- Rejected (raw.quarantine, reason_code): unreadable keys, amounts or times, order times before 1970
-- or order / update times at or after the run's cutoff (future_timestamp / future_updated_at, held: every
-- later run examines them again), unknown statuses or currencies, customers that no customer row has. Corrected
-- (staging.corrections): amounts written as text, totals that disagree with their lines, refunds
-- (no revenue). Identical copies of an order in one batch are counted in staging.merged_rows.
create table if not exists staging.orders (
    order_id bigint primary key, -- Shop order id
    customer_id bigint not null, -- The surviving customer (ids merged by staging.customers are mapped)
    order_ts timestamptz not null, -- When the order was placed
    order_date date not null, -- Its UTC date
    status text not null, -- Order status, lower case
    currency text, -- ISO currency code
    total_amount numeric(14, 2) not null, -- Order total
    net_amount numeric(14, 2) not null, -- Total net of refunds (0 for cancelled orders)
    coupon_code text, -- Coupon redeemed, upper case
    updated_at timestamptz -- Last change in the shop
)
;;
-- Conversions and audiences read a customer's orders by customer id and time.
create index if not exists orders__customer_ts on staging.orders (customer_id, order_ts)
;;
select staging.begin_checked('raw.shop_orders', 'staging.orders', %(run_ts)s)
;;
create temporary table _judged on commit drop as
with

customers as (
    select
        c.customer_id,
        c.customer_id as surviving_customer_id
    from staging.customers as c
    union all
    select
        m.merged_key::bigint,
        m.surviving_key::bigint
    from staging.merged_rows as m
    where m.table_name = 'raw.shop_customers' and m.kind = 'same_person_two_ids'
),

source as materialized (
    select
        r.*,
        r.ctid as row_position,
        staging.try_bigint(r.order_id) as k_order_id,
        staging.try_bigint(r.customer_id) as t_customer_id,
        staging.try_ts(r.order_ts) as order_time,
        staging.try_ts(r.updated_at) as updated_ts,
        lower(staging.clean(r.status)) as t_status,
        upper(staging.clean(r.currency)) as t_currency,
        staging.parse_amount(r.total_amount) as amount
    from raw.shop_orders as r
    where staging.in_scope(
        r._loaded_at, %(run_ts)s, (select staging.since()),
        -- Judged again: orders waiting for their customer or of a customer merged into another (their
        -- customer ids differ), of a customer merged now, and orders whose lines changed or may have
        -- (new lines, lines held last run).
        r.ctid in (select staging.rows_to_recheck($$
            s.surviving_customer_id is distinct from s.t_customer_id
            or s.t_customer_id in (
                select m.merged_key::bigint from staging.merged_rows as m
                where m.table_name = 'raw.shop_customers' and m.kind = 'same_person_two_ids')
            or s.k_order_id in (
                select staging.try_bigint(i.order_id) from raw.shop_order_items as i
                where i._loaded_at > staging.since())
            or s.k_order_id in (select staging.order_ids_of_held_lines())
        $$))
    )
),

judged as materialized (
    select
        s.*,
        cust.surviving_customer_id,
        staging.key_text(s.k_order_id, s.order_id) as row_key,
        staging.key_text(s.k_order_id, s.order_id) as source_ref,
        case
            when s.k_order_id is null then 'invalid_key'
            when s.t_customer_id is null then 'invalid_customer_id'
            when s.order_time is null or s.updated_ts is null then 'invalid_timestamp'
            when s.order_time < timestamptz '1970-01-01 00:00:00+00' then 'pre_epoch_timestamp'
            when s.order_time >= %(run_ts)s then 'future_timestamp'
            when s.updated_ts >= %(run_ts)s then 'future_updated_at'
            when s.t_status is null or s.t_status not in ('completed', 'refunded', 'cancelled') then 'invalid_status'
            when s.t_currency not in (select rc.currency_code from staging.ref_currencies as rc) then 'unknown_currency'
            when s.amount is null or s.amount < 0 then 'invalid_amount'
            when s.amount >= 1e12 then 'amount_out_of_range'
            when cust.surviving_customer_id is null then 'unknown_customer'
        end as reject_code,
        md5(concat_ws('|', s.order_id, s.customer_id, s.order_ts, s.status, s.currency, s.total_amount,
                      s.coupon_code, s.updated_at)) as content_hash
    from source as s
    left join customers as cust on s.t_customer_id = cust.customer_id
),

reasons as (
    select
        j.*,
        case j.reject_code
            when 'invalid_key' then 'order_id ' || coalesce(quote_literal(j.order_id), 'is empty')
                || ': the shop must send a whole-number order id'
            when 'invalid_customer_id' then 'customer_id ' || coalesce(quote_literal(j.customer_id), 'is empty')
                || ' is not a whole number; fix the order in the shop'
            when 'invalid_timestamp' then 'order_ts ' || coalesce(quote_literal(j.order_ts), 'empty')
                || ' / updated_at ' || coalesce(quote_literal(j.updated_at), 'empty')
                || ': both must be ISO 8601 timestamps'
            when 'pre_epoch_timestamp' then 'order_ts ' || quote_literal(j.order_ts)
                || ' is before 1970, a placeholder for an unknown time; the order time must be set in the shop'
            when 'future_timestamp' then 'order_ts ' || quote_literal(j.order_ts) || ' / updated_at '
                || quote_literal(j.updated_at) || ' is at or after the run''s cutoff ' || %(run_ts)s::text
                || '; held and examined again by every later run (staged once its time has come): if it is a'
                || ' clock error, fix the clock of the source system and send the row again'
            when 'invalid_status' then 'status ' || coalesce(quote_literal(j.status), 'is empty')
                || ' is not one of completed, refunded, cancelled; map it in the extract'
            when 'unknown_currency' then 'currency ' || quote_literal(j.currency)
                || ' is not an ISO 4217 currency (staging.ref_currencies); fix the order in the shop'
            when 'invalid_amount' then 'total_amount ' || coalesce(quote_literal(j.total_amount), 'is empty')
                || ' is not an amount >= 0'
            when 'amount_out_of_range' then 'total_amount ' || quote_literal(j.total_amount)
                || ' is out of range (below 1,000,000,000,000); fix the order in the shop'
            when 'unknown_customer' then 'customer ' || j.t_customer_id::text
                || ' is in no customer row received so far; the order is staged once its customer arrives'
            else staging.held_reason(j.reject_code, null, null, j.updated_at, %(run_ts)s)
        end as reject_reason
    from judged as j
),

line_totals as (
    -- What the lines add up to, for orders whose every line is readable with a quantity >= 0 and a
    -- price > 0 (a line staging rejects or flags as free says nothing about the order's total); a line
    -- whose only version is held (updated at or after the cutoff) leaves the order's total as sent.
    select
        l.order_id,
        sum(l.quantity * l.unit_price) as lines_amount,
        bool_and(coalesce(l.quantity between 0 and 1000000 and l.unit_price > 0 and l.unit_price < 1e10
                          and not l.is_held, false))
        and sum(l.quantity * l.unit_price) < 1e12 as comparable
    from (
        select distinct on (staging.try_bigint(i.order_id), staging.try_bigint(i.line_no))
            staging.try_bigint(i.order_id) as order_id,
            staging.try_bigint(i.quantity) as quantity,
            staging.try_numeric(i.unit_price) as unit_price,
            coalesce(staging.try_ts(i.updated_at) >= %(run_ts)s, false) as is_held
        from raw.shop_order_items as i
        where
            i._loaded_at <= %(run_ts)s
            and ((select staging.since()) = '-infinity' or staging.try_bigint(i.order_id) in (select s.k_order_id from source as s))
        order by
            staging.try_bigint(i.order_id), staging.try_bigint(i.line_no),
            coalesce(staging.try_ts(i.updated_at) >= %(run_ts)s, false), staging.try_ts(i.updated_at) desc,
            i._loaded_at desc
    ) as l
    group by l.order_id
)

select
    r.*,
    case when lt.comparable and abs(lt.lines_amount - r.amount) >= 0.005 then lt.lines_amount end as lines_amount
from reasons as r
left join line_totals as lt on r.k_order_id = lt.order_id
;;
select staging.settle_checked('raw.shop_orders', array['k_order_id'], 'duplicate_order_id', %(run_date)s)
;;
insert into staging.corrections
    (run_date, table_name, row_key, source_ref, batch_id, kind, field, original_value, corrected_value)
select %(run_date)s, 'raw.shop_orders', c.row_key, c.source_ref, c._batch_id, f.kind, f.field, f.original, f.corrected
from _checked as c
cross join lateral (
    values
        ('number_as_text', 'total_amount', c.total_amount, c.amount::text,
         c.total_amount !~ '^[0-9]+(\.[0-9]+)?$'),
        ('total_mismatch', 'total_amount', c.total_amount, c.lines_amount::text, c.lines_amount is not null),
        ('refund', 'net_amount', c.total_amount, '0', c.t_status = 'refunded')
) as f (kind, field, original, corrected, applies)
where c.disposition <> 'quarantined' and f.applies
;;
insert into staging.orders
with

final as (
    select
        c.k_order_id as order_id,
        c.surviving_customer_id as customer_id,
        c.order_time as order_ts,
        (c.order_time at time zone 'UTC')::date as order_date,
        c.t_status as status,
        c.t_currency as currency,
        coalesce(c.lines_amount, c.amount)::numeric(14, 2) as total_amount,
        -- Refunded and cancelled orders keep their row but bring no revenue.
        case when c.t_status = 'completed' then coalesce(c.lines_amount, c.amount) else 0 end::numeric(14, 2)
            as net_amount,
        staging.clean(c.coupon_code) as coupon_code,
        c.updated_ts as updated_at
    from _checked as c
    where c.disposition = 'staged'
)

select * from final
on conflict (order_id) do update
set (customer_id, order_ts, order_date, status, currency, total_amount, net_amount, coupon_code, updated_at) = (
    excluded.customer_id, excluded.order_ts, excluded.order_date, excluded.status, excluded.currency,
    excluded.total_amount, excluded.net_amount, excluded.coupon_code, excluded.updated_at
)
;;
select staging.finish_checked('staging.orders', 'raw.shop_orders', %(run_date)s, %(run_ts)s)
