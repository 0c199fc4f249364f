-- grain: one row per erasure request
-- materialized: table
-- Written by martech.privacy.erase: what one request removed, per table and file kind; no personal data.
create table if not exists campaigns.erasure_requests (
    request_id text not null, -- Id the request was filed under (ticket or case number)
    run_date date not null, -- Run date of the gdpr_erase run that carried it out
    identified_by text not null, -- contact_id or email: which identifier the request gave (not its value)
    counts jsonb not null, -- Rows deleted or made pseudonymous per table, files per kind
    constraint erasure_requests_pkey primary key (request_id)
)
