-- grain: one row per contact (a lapsed valuable customer)
-- Audience: lapsed valuable customers (winback).
-- One row per contact. RFM segment 'At Risk', 'Can''t Lose Them' or 'Hibernating' in the customer's
-- latest marts.customer_rfm row as of the run date, with monetary above the median of all customers;
-- or P(alive) below 0.3 in the latest marts.clv_predictions with monetary in the top quarter.
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: last_category (main category of the last completed order), value_tier and
-- coupon_percent (gold 20 / silver 15 / bronze 10 by monetary percentile; 25 as the last-resort offer),
-- unanswered_sends (earlier winback mails without an open or click) and last_resort (two or more winback
-- mails and none answered: the last mail before the sunset after 3 unanswered sends, sunset_after in
-- winback.yml).
with

rfm_as_of as (
    select distinct on (r.customer_id)
        r.customer_id,
        r.monetary,
        r.segment
    from marts.customer_rfm as r
    where r.as_of_date <= %(run_date)s::date
    order by r.customer_id asc, r.as_of_date desc
),

thresholds as (
    select
        percentile_cont(0.5) within group (order by r.monetary) as p50,
        percentile_cont(0.75) within group (order by r.monetary) as p75,
        percentile_cont(0.9) within group (order by r.monetary) as p90
    from rfm_as_of as r
),

probably_gone as (
    select p.customer_id
    from marts.clv_predictions as p
    where
        p.p_alive < 0.3
        and p.as_of = (
            select max(q.as_of) from marts.clv_predictions as q
            where q.as_of <= %(run_date)s::date
        )
),

lapsed_valuable as (
    select
        r.customer_id,
        r.segment,
        case
            when r.monetary >= t.p90 then 'gold'
            when r.monetary >= t.p75 then 'silver'
            else 'bronze'
        end as value_tier
    from rfm_as_of as r
    cross join thresholds as t
    where
        (r.segment in ('At Risk', 'Can''t Lose Them', 'Hibernating') and r.monetary > t.p50)
        -- or the BG/NBD model thinks they have probably stopped buying, and they used to spend well
        or (r.monetary >= t.p75 and r.customer_id in (select g.customer_id from probably_gone as g))
),

last_category as (
    select distinct on (o.customer_id)
        o.customer_id,
        p.category
    from staging.orders as o
    inner join staging.order_items as i on o.order_id = i.order_id
    inner join staging.products as p on i.product_id = p.product_id
    where
        o.status = 'completed'
        and (o.order_ts at time zone 'UTC')::date <= %(run_date)s::date
    order by o.customer_id asc, o.order_ts desc, o.order_id desc, i.line_amount desc, i.line_no asc
),

unanswered as (
    select
        l.contact_id,
        count(*) as sends,
        count(*) filter (
            where not exists (
                select 1 from staging.email_events as e
                where e.send_id = l.send_id and e.event in ('open', 'click')
            )
        ) as unanswered_sends
    from campaigns.send_ledger as l
    where
        l.campaign_id = 'winback'
        and l.status = 'sent'
        and l.sent_at < %(run_date)s::date
    group by l.contact_id
),

final as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        lv.segment as rfm_segment,
        lc.category as last_category,
        lv.value_tier,
        case
            when u.unanswered_sends >= 2 and u.unanswered_sends = u.sends then 25
            when lv.value_tier = 'gold' then 20
            when lv.value_tier = 'silver' then 15
            else 10
        end as coupon_percent,
        coalesce(u.unanswered_sends, 0) as unanswered_sends,
        coalesce(u.unanswered_sends >= 2 and u.unanswered_sends = u.sends, false) as last_resort
    from lapsed_valuable as lv
    inner join staging.contacts as c on lv.customer_id = c.customer_id
    left join last_category as lc on lv.customer_id = lc.customer_id
    left join unanswered as u on c.contact_id = u.contact_id
)

select * from final
