-- grain: one row per product view (a product page seen in a web session)
-- materialized: model
-- Rejected (raw.quarantine): unreadable keys, products or timestamps; views at or after the run's cutoff
-- (held: every later run examines them again). Two versions with the same updated_at and different
-- content are recorded (staging.corrections).
create table if not exists staging.product_views (
    session_id text not null, -- The web session (staging.web_sessions)
    view_no integer not null, -- Position of the view within its session, from 1
    product_id bigint not null, -- Product viewed
    viewed_at timestamptz not null, -- When it was viewed
    primary key (session_id, view_no)
)
;;
select staging.begin_checked('raw.shop_product_views', 'staging.product_views', %(run_ts)s)
;;
create temporary table _judged on commit drop as
with

source as materialized (
    select
        r.*,
        r.ctid as row_position,
        staging.clean(r.session_id) as k_session_id,
        staging.try_bigint(r.view_no) as k_view_no,
        staging.try_bigint(r.product_id) as t_product_id,
        staging.try_ts(r.viewed_at) as viewed_ts,
        staging.try_ts(r.updated_at) as updated_ts,
        md5(concat_ws('|', r.session_id, r.view_no, r.product_id, r.viewed_at, r.updated_at)) as content_hash
    from raw.shop_product_views as r
    where staging.in_scope(
        r._loaded_at, %(run_ts)s, (select staging.since()), r.ctid in (select staging.rows_to_recheck())
    )
),

judged as (
    select
        s.*,
        coalesce(s.k_session_id, '') || ':' || staging.key_text(s.k_view_no, s.view_no) as row_key,
        coalesce(s.k_session_id, '') || ':' || staging.key_text(s.k_view_no, s.view_no) as source_ref,
        case
            when s.k_session_id is null or s.k_view_no is null or s.k_view_no not between 1 and 1000000 then 'invalid_key'
            when s.t_product_id is null then 'invalid_product_id'
            when s.viewed_ts is null or s.updated_ts is null then 'invalid_timestamp'
            else staging.held_code(s.viewed_ts, s.updated_ts, %(run_ts)s)
        end as reject_code
    from source as s
),

reasons as (
    select
        j.*,
        case j.reject_code
            when 'invalid_key'
                then
                    'session_id / view_no ' || coalesce(quote_literal(j.session_id), 'empty') || ' / '
                    || coalesce(quote_literal(j.view_no), 'empty') || ': a session id and a view number from 1 are needed'
            when 'invalid_product_id'
                then
                    'product_id ' || coalesce(quote_literal(j.product_id), 'is empty')
                    || ' is not a whole number'
            when 'invalid_timestamp' then
                'viewed_at / updated_at ' || coalesce(quote_literal(j.viewed_at), 'empty')
                || ' / ' || coalesce(quote_literal(j.updated_at), 'empty') || ' must be ISO 8601 timestamps'
            else staging.held_reason(j.reject_code, 'viewed_at', j.viewed_at, j.updated_at, %(run_ts)s)
        end as reject_reason
    from judged as j
)

select * from reasons
;;
select staging.settle_checked('raw.shop_product_views', array['k_session_id', 'k_view_no'], 'duplicate_row', %(run_date)s)
;;
insert into staging.product_views
with

final as (
    select
        c.k_session_id as session_id,
        c.k_view_no::integer as view_no,
        c.t_product_id as product_id,
        c.viewed_ts as viewed_at
    from _checked as c
    where c.disposition = 'staged'
)

select * from final
on conflict (session_id, view_no) do update
set (product_id, viewed_at) = (excluded.product_id, excluded.viewed_at)
;;
select staging.finish_checked('staging.product_views', 'raw.shop_product_views', %(run_date)s, %(run_ts)s)
