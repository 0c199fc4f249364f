-- grain: one row per erased address
-- materialized: table
-- Written by martech.privacy.erase: a keyed hash of the normalised address of every erased person, so
-- that a later import of the same address is never mailed. The address itself is not kept.
create table if not exists campaigns.do_not_contact (
    address_hmac text not null, -- HMAC-SHA256 (hex) of lower(trim(address)) with MARTECH_ERASURE_SECRET
    request_id text not null, -- Erasure request that listed it (campaigns.erasure_requests)
    listed_on date not null, -- Run date of that request
    constraint do_not_contact_pkey primary key (address_hmac)
)
