-- grain: one row per contact (a shop customer with an e-mail address)
-- Audience: every contact linked to a shop customer. The campaign's targeting keeps those whose
-- newsletter sign-up (consent becoming opted_in or double_opt_in, staging.contacts.consent_updated_at)
-- fell on one of the last 2 local days and who ordered in the last 30 local days; the cooldown mails
-- each contact once.
-- Consent, suppressions and missing emails are filtered by build_snapshot around this query.
-- Personalization: timezone (for the expiry in local time), signed_up_at.
with

final as (
    select
        c.contact_id,
        c.email,
        c.first_name,
        c.timezone,
        c.consent_updated_at as signed_up_at
    from staging.contacts as c
    where
        c.customer_id is not null
        and c.email is not null
)

select * from final
