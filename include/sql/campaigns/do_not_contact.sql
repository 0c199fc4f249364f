-- grain: one row per erased address or id
-- materialized: table
-- Written by martech.privacy.erase: a keyed hash of the normalised address, and of the contact and shop
-- customer ids, of every erased person, so that a later import of them is held back at staging and never
-- mailed. The address and ids themselves are not kept.
create table if not exists campaigns.do_not_contact (
    address_hmac text not null, -- HMAC-SHA256 (hex) with MARTECH_ERASURE_SECRET of lower(trim(address)), or of kind:id
    request_id text not null, -- Erasure request that listed it (campaigns.erasure_requests)
    listed_on date not null, -- Run date of that request (or of the staging run that met a new id of the person)
    kind text not null default 'address', -- address, contact_id (CRM) or customer_id (shop)
    constraint do_not_contact_pkey primary key (address_hmac)
)
;;
alter table campaigns.do_not_contact add column if not exists kind text not null default 'address'
