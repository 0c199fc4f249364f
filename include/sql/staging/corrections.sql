-- grain: one row per repaired field of a staged source row (per raw row version, kind and field)
-- materialized: table
-- Staging keeps a row whose field it could repair and records here what it found and what it made of
-- it (the kinds and their rules: martech.simulate.defects). The parsers that find those fields are in
-- staging/functions/parsers.sql.
create table if not exists staging.corrections (
    run_date date not null, -- The staging run that made the correction
    table_name text not null, -- Raw table of the row, e.g. raw.crm_contacts
    row_key text not null, -- Natural key of the row (contact_id, order_id, order_id:line_no, ...)
    source_ref text not null, -- Where the row came from: file:line for files, else the row key
    batch_id text not null, -- Landing batch of the raw row
    kind text not null, -- Defect kind (martech.simulate.defects), e.g. number_as_text
    field text not null, -- The repaired column
    original_value text, -- The value as received
    corrected_value text -- The value staged
)
;;
create index if not exists corrections__table on staging.corrections (table_name, kind)
