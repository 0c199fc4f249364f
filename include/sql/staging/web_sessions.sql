-- grain: one row per web session (latest version received)
-- materialized: model
create table if not exists staging.web_sessions (
    session_id text primary key, -- Tracker's session id
    customer_id bigint, -- Logged-in shop customer; null for leads and anonymous visitors
    contact_id text, -- CRM contact identified by an e-mail click (leads); null otherwise
    started_at timestamptz not null,
    ended_at timestamptz, -- Last hit of the session
    page_views integer not null, -- Pages viewed in the session, product pages included
    product_views integer not null, -- Product pages viewed (rows in staging.product_views)
    updated_at timestamptz
)
;;
truncate staging.web_sessions
;;
insert into staging.web_sessions
with

source as (
    select * from raw.shop_web_sessions
    where _loaded_at <= %(run_ts)s
),

latest as (
    select distinct on (trim(session_id))
        trim(session_id) as session_id,
        nullif(trim(customer_id), '')::bigint as customer_id,
        nullif(trim(contact_id), '') as contact_id,
        started_at::timestamptz as started_at,
        nullif(trim(ended_at), '')::timestamptz as ended_at,
        page_views::integer as page_views,
        product_views::integer as product_views,
        updated_at::timestamptz as updated_at
    from source
    where nullif(trim(session_id), '') is not null
    order by trim(session_id), updated_at::timestamptz desc, _loaded_at desc
)

select * from latest
