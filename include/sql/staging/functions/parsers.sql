-- materialized: functions
-- The parsers every staging model uses: they return null instead of raising, so one bad value never
-- stops a rebuild; the model then quarantines or corrects the row (staging.corrections) and says so.
-- Applied by martech.db.migrate after the tables; a function may call only those defined above it.

-- Text without surrounding whitespace (blanks, tabs, line breaks; trim() takes blanks only); '' is null.
create or replace function staging.clean(v text) returns text
language sql immutable parallel safe as $$
    select nullif(btrim(v, e' \t\r\n\f\x0b'), '')
$$
;;
-- An integer key or count as text: digits only (a sign allowed), within bigint.
create or replace function staging.try_bigint(v text) returns bigint
language sql immutable parallel safe as $$
    select case when trim(v) ~ '^[+-]?[0-9]{1,18}$' then trim(v)::bigint end
$$
;;
-- A plain decimal number ('12.50', '-3', '.5'); anything else is null.
create or replace function staging.try_numeric(v text) returns numeric
language sql immutable parallel safe as $$
    select case when trim(v) ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$' and length(trim(v)) <= 30
                then trim(v)::numeric end
$$
;;
-- A money amount as legacy systems write it: '1,234.50', '€1,234.50', 'EUR 1234.50', ' 12.90 '.
-- Only thousands separators of exactly three digits and one leading currency sign or code are read.
create or replace function staging.parse_amount(v text) returns numeric
language sql immutable parallel safe as $$
    select case
        when staging.try_numeric(v) is not null then staging.try_numeric(v)
        when trim(v) ~ '^([€$£]|[A-Z]{3} ?)?-?[0-9]{1,3}(,[0-9]{3})*(\.[0-9]+)?$'
            then regexp_replace(trim(v), '[^0-9.-]', '', 'g')::numeric
        when trim(v) ~ '^([€$£]|[A-Z]{3} ?)-?[0-9]+(\.[0-9]+)?$'
            then regexp_replace(trim(v), '[^0-9.-]', '', 'g')::numeric
    end
$$
;;
-- A calendar date 'YYYY-MM-DD' that exists (no 31 February, no month 13); else null.
create or replace function staging.try_date(v text) returns date
language sql immutable parallel safe as $$
    select case
        when trim(v) ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$'
             and substr(trim(v), 1, 4)::int >= 1
             and substr(trim(v), 9, 2)::int <= extract(day from (
                 make_date(substr(trim(v), 1, 4)::int, substr(trim(v), 6, 2)::int, 1)
                 + interval '1 month - 1 day'))
        then make_date(substr(trim(v), 1, 4)::int, substr(trim(v), 6, 2)::int, substr(trim(v), 9, 2)::int)
    end
$$
;;
-- True when a timestamp text carries no zone offset ('2026-01-02T10:00:00').
create or replace function staging.is_naive_ts(v text) returns boolean
language sql immutable parallel safe as $$
    select trim(v) !~ '(Z|[+-][0-9]{2}(:?[0-9]{2})?)$'
$$
;;
-- An ISO 8601 timestamp; one without an offset is read as UTC (the documented source convention).
-- Null for text that is not a real instant, so the model can quarantine the row with a reason.
create or replace function staging.try_ts_general(v text) returns timestamptz
language sql stable parallel safe as $$
    select case
        when trim(v) ~ ('^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]+)?)?)?'
                        '\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$')
             and staging.try_date(substr(trim(v), 1, 10)) is not null
        then case when staging.is_naive_ts(v)
                  then (replace(trim(v), 'T', ' ')::timestamp) at time zone 'UTC'
                  else replace(trim(v), 'T', ' ')::timestamptz end
    end
$$
;;
-- The same, with a fast path for the common shape (a day 01-28 exists in every month, and an offset
-- is given): one regular expression and a cast. Everything else takes the general path.
create or replace function staging.try_ts(v text) returns timestamptz
language sql stable parallel safe as $$
    select case
        when v ~ '^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,6})?([+-]\d\d(:?\d\d)?|Z)$'
             and substr(v, 6, 2) between '01' and '12' and substr(v, 9, 2) between '01' and '28'
             and substr(v, 12, 2) < '24' and substr(v, 15, 2) < '60' and substr(v, 18, 2) < '60'
        then v::timestamptz
        else staging.try_ts_general(v)
    end
$$
;;
-- Text that was UTF-8, wrongly read as CP1252 and saved again ('BjÃ¶rn'): decoded back when that
-- yields valid UTF-8, else returned unchanged. Only text holding a UTF-8 lead byte's CP1252 glyph is
-- tried, so clean names are never touched.
create or replace function staging.fix_mojibake(v text) returns text
language plpgsql immutable parallel unsafe as $$
begin
    if v is null or v !~ '[Â-ô]' then
        return v;
    end if;
    begin
        return convert_from(convert_to(v, 'WIN1252'), 'UTF8');
    exception when others then
        return v;
    end;
end
$$
;;
-- HTML tags (and whole script / style elements) removed from a name; blanks squeezed.
create or replace function staging.strip_markup(v text) returns text
language sql immutable parallel safe as $$
    select trim(regexp_replace(
        regexp_replace(regexp_replace(v, '<(script|style)\b[^>]*>.*?</\1\s*>', '', 'gi'), '<[^>]*>', '', 'g'),
        '\s{2,}', ' ', 'g'))
$$
;;
-- An e-mail address that can be delivered to: local part, '@', a domain with a dot and a TLD.
create or replace function staging.is_email(v text) returns boolean
language sql immutable parallel safe as $$
    select trim(v) ~ ('^[A-Za-z0-9.!#$%&''*+/=?^_`{|}~-]+@'
                      '([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$')
$$
;;
-- The reason of a row held because a time of it is at or after the run's cutoff: every later run examines
-- it again (raw.quarantine is rebuilt from raw), so it is staged once its time has come, and a clock
-- error (2099) stays held and never shadows the corrected version the source sends next.
create or replace function staging.future_reason(p_field text, p_value text, p_run_ts timestamptz)
returns text
language sql stable parallel safe as $$
    select p_field || ' ' || quote_literal(p_value) || ' is at or after the run''s cutoff ' || p_run_ts::text
        || '; held and examined again by every later run (staged once its time has come): if it is a clock'
        || ' error, fix the clock of the source system and send the row again'
$$
;;
-- The code of a row held because a time of it is at or after the run's cutoff: future_timestamp for the
-- model's own time (p_ts; null for a model without one), else future_updated_at; null when neither is.
create or replace function staging.held_code(p_ts timestamptz, p_updated_ts timestamptz, p_run_ts timestamptz)
returns text
language sql immutable parallel safe as $$
    select case
        when p_ts >= p_run_ts then 'future_timestamp'
        when p_updated_ts >= p_run_ts then 'future_updated_at'
    end
$$
;;
-- The reason of a row held as future-dated, for either code: future_timestamp names the model's own time
-- (p_field, its value as received), future_updated_at the row's updated_at; null for any other code.
create or replace function staging.held_reason(
    p_code text, p_field text, p_value text, p_updated_at text, p_run_ts timestamptz
) returns text
language sql stable parallel safe as $$
    select case p_code
        when 'future_timestamp' then staging.future_reason(p_field, p_value, p_run_ts)
        when 'future_updated_at' then staging.future_reason('updated_at', p_updated_at, p_run_ts)
    end
$$
;;
-- A whole-number key as row_key and source_ref show it: the number read, else the text as received ('' for none).
create or replace function staging.key_text(p_key bigint, p_received text) returns text
language sql immutable parallel safe as $$
    select coalesce(p_key::text, p_received, '')
$$
;;
-- An event time as ESP feeds write it: Unix seconds ('1767225600', '1767225600.5') within 1970..9999, or an
-- ISO 8601 timestamp; null for anything else (the model quarantines the row instead of failing).
create or replace function staging.event_time(v text) returns timestamptz
language sql stable parallel safe as $$
    select case
        when trim(v) ~ '^[0-9]{1,11}(\.[0-9]{1,9})?$' and trim(v)::numeric < 253402300800
            then to_timestamp(trim(v)::double precision)
        else staging.try_ts(v)
    end
$$
