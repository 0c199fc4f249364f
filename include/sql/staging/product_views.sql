-- grain: one row per product view (a product page seen in a web session)
-- materialized: model
create table if not exists staging.product_views (
    session_id text not null, -- The web session (staging.web_sessions)
    view_no integer not null, -- Position of the view within its session, from 1
    product_id bigint not null,
    viewed_at timestamptz not null,
    primary key (session_id, view_no)
)
;;
truncate staging.product_views
;;
insert into staging.product_views
with

source as (
    select * from raw.shop_product_views
    where _loaded_at <= %(run_ts)s
),

latest as (
    select distinct on (trim(session_id), view_no::integer)
        trim(session_id) as session_id,
        view_no::integer as view_no,
        product_id::bigint as product_id,
        viewed_at::timestamptz as viewed_at
    from source
    order by trim(session_id), view_no::integer, updated_at::timestamptz desc, _loaded_at desc
)

select * from latest
