-- grain: one row per rejected source row
-- materialized: table
-- Nothing is dropped silently: a row that cannot be landed or staged is kept here with a reason a
-- person can act on.
create table if not exists raw.quarantine (
    table_name text not null, -- Raw table the row belongs to
    batch_id text not null, -- Batch that received it
    source_ref text not null, -- Where the row is: file:line, or source and key
    received text not null, -- The row as received (landing: the line's bytes; staging: the raw row as JSON)
    reason text not null, -- What is wrong and what to do about it, in words
    run_date date not null, -- Run that rejected the row (for staging rejects: the latest staging run)
    reason_code text, -- Machine-readable reason: a martech.simulate.defects kind, or e.g. invalid_key
    stage text not null default 'landing', -- landing (unreadable at load) or staging (rejected by a staging rule)
    row_key text -- Natural key of the row when it could be read
)
;;
create index if not exists quarantine__batch on raw.quarantine (batch_id)
;;
alter table raw.quarantine add column if not exists reason_code text
;;
alter table raw.quarantine add column if not exists stage text not null default 'landing'
;;
alter table raw.quarantine add column if not exists row_key text
;;
create index if not exists quarantine__table_stage on raw.quarantine (table_name, stage)
;;
-- How received holds the bytes of the line: 'text' (valid UTF-8 without NUL) or 'base64'.
alter table raw.quarantine add column if not exists received_encoding text not null default 'text'
;;
comment on column raw.quarantine.received_encoding is
'How received holds the line: text (valid UTF-8 without NUL) or base64'
