-- grain: one row per open lead (contact) scored A, B or C for the run date
-- Audience: open leads scored for the run date in tiers A, B and C (marts.lead_scores).
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: tier, score (rounded), lead_source, first_order_code (tiers A and B only).
with

scores as (
    select
        s.contact_id,
        s.tier,
        s.score
    from marts.lead_scores as s
    where s.as_of = %(run_date)s::date and s.tier in ('A', 'B', 'C')
),

final as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        s.tier,
        round(s.score::numeric, 2) as score,
        coalesce(c.lead_source, 'unknown') as lead_source,
        case when s.tier in ('A', 'B') then 'WELCOME10' end as first_order_code
    from scores as s
    inner join staging.contacts as c on s.contact_id = c.contact_id
    where c.customer_id is null
)

select * from final
