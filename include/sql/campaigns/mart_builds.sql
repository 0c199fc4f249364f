-- grain: one row per mart and as-of date it was built for
-- materialized: table
-- Written by the stage that builds a mart whose rows may legitimately be none (marts.crm_stage_transitions
-- without a CRM connected): the campaign freshness gate accepts such a mart as built for a run date when
-- it is listed here, instead of reading an empty table as "never built".
create table if not exists campaigns.mart_builds (
    table_name text not null, -- Qualified name, e.g. marts.crm_stage_transitions
    as_of date not null, -- The run date it was built for
    row_count integer not null, -- Rows it held after the build
    constraint mart_builds_pkey primary key (table_name, as_of)
)
