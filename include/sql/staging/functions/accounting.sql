-- materialized: functions
-- The steps every staging model shares to account for its raw rows (staging.row_accounting,
-- staging.merged_rows, staging.corrections, raw.quarantine). Applied by martech.db.migrate after
-- the tables they write.

-- The state of an incrementally built model: its settled raw rows (_checked) as of the last run, which
-- the next run reads for the keys new rows touch. A full rebuild writes it anew, an incremental run replaces
-- the rows of the keys it touched (_touched).
create or replace function staging.keep_state(p_table text, p_raw_table text, p_incremental boolean)
returns void
language plpgsql as $$
declare
    v_state text := 'staging_state.' || split_part(p_table, '.', 2);
    v_cols text := (select string_agg(quote_ident(a.attname), ', ' order by a.attnum) from pg_attribute as a
                    where a.attrelid = '_checked'::regclass and a.attnum > 0 and not a.attisdropped);
begin
    if p_incremental then
        execute format('delete from %s as s where s.row_key in (select t.row_key from _touched as t)', v_state);
        execute format('insert into %s (%s) select %2$s from _checked where raw_table = $1', v_state, v_cols)
        using p_raw_table;
    else
        create schema if not exists staging_state;
        comment on schema staging_state is
            'The settled raw rows of incrementally built staging tables (internal to martech.staging)';
        execute format('drop table if exists %s', v_state);
        execute format('create table %s as select * from _checked where raw_table = %L', v_state, p_raw_table);
        execute format('create index on %s (row_key)', v_state);
    end if;
    execute format('analyze %s', v_state);
end
$$
;;
-- Each staging model builds a temporary table _checked with one row per raw row and its
-- disposition (staged, quarantined, duplicate, superseded, merged); this writes the quarantine rows and
-- the accounting row from it, so every model handles rejects the same way.
create or replace function staging.finish_checked(
    p_table text, p_raw_table text, p_run_date date,
    p_run_ts timestamptz
) returns bigint
language plpgsql as $$
declare
    n_quarantined bigint := 0;
    n bigint;
    v_raw text;
    v_state text := coalesce(current_setting('martech.state_table', true), '');
    v_incremental boolean := staging.state_table() is not null;
begin
    -- A model fed by several raw tables says which row came from where in _checked.raw_table; the
    -- others come from p_raw_table alone.
    create temporary table if not exists _checked_sources (raw_table text) on commit drop;
    truncate _checked_sources;
    if exists (select 1 from information_schema.columns
               where table_name = '_checked' and column_name = 'raw_table'
                 and table_schema like 'pg_temp%') then
        execute 'insert into _checked_sources select distinct raw_table from _checked';
        insert into _checked_sources select p_raw_table
        where not exists (select 1 from _checked_sources where raw_table = p_raw_table);
    else
        alter table _checked add column raw_table text;
        execute format('update _checked set raw_table = %L', p_raw_table);
        insert into _checked_sources values (p_raw_table);
    end if;

    for v_raw in select raw_table from _checked_sources order by 1 loop
        if v_incremental then
            -- _checked holds every raw row of the keys it touched: their quarantine rows are written again.
            delete from raw.quarantine as q
            where q.stage = 'staging' and q.table_name = v_raw and q.row_key in (select t.row_key from _touched as t);
        else
            delete from raw.quarantine where stage = 'staging' and table_name = v_raw;
        end if;
        -- The row as received is rendered for rejected rows only (found again by its physical position).
        execute format(
            'insert into raw.quarantine (table_name, batch_id, source_ref, received, reason, run_date, reason_code,'
            ' stage, row_key)'
            ' select $1, c._batch_id, c.source_ref, row_to_json(r)::text, c.reject_reason, $2, c.reject_code,'
            ' ''staging'', c.row_key'
            ' from _checked as c join %s as r on r.ctid = c.row_position'
            ' where c.disposition = ''quarantined'' and c.raw_table = $1', v_raw)
        using v_raw, p_run_date;
        get diagnostics n = row_count;
        n_quarantined := n_quarantined + n;

        if v_state <> '' then
            perform staging.keep_state(p_table, v_raw, v_incremental);
        end if;
        if v_incremental then
            -- As a full rebuild records them: every reject, merge and repair dated by the latest run.
            update raw.quarantine set run_date = p_run_date
            where stage = 'staging' and table_name = v_raw and run_date <> p_run_date;
            update staging.merged_rows set run_date = p_run_date where table_name = v_raw and run_date <> p_run_date;
            update staging.corrections set run_date = p_run_date where table_name = v_raw and run_date <> p_run_date;
        end if;

        delete from staging.row_accounting
        where run_date = p_run_date and table_name = p_table and raw_table = v_raw;
        -- Incrementally: counted over the model's state, which holds every raw row up to the cutoff.
        execute format(
            'insert into staging.row_accounting'
            ' select $1, $2, $3, count(*),'
            '        count(*) filter (where c.disposition = ''staged''),'
            '        count(*) filter (where c.disposition = ''quarantined''),'
            '        count(*) filter (where c.disposition = ''duplicate''),'
            '        count(*) filter (where c.disposition = ''superseded''),'
            '        count(*) filter (where c.disposition = ''merged''),'
            '        (select count(*) from raw.quarantine as q'
            '         join raw.ingest_batches as b on b.batch_id = q.batch_id'
            '         where q.stage = ''landing'' and q.table_name = $3 and b.loaded_at <= $4)'
            ' from %s as c where c.raw_table = $3',
            case when v_incremental then v_state else '_checked' end)
        using p_run_date, p_table, v_raw, p_run_ts;

        if v_state <> '' then
            insert into staging.model_watermarks as w
            select a.table_name, a.raw_table, p_run_ts, a.rows_received, p_run_date, not v_incremental
            from staging.row_accounting as a
            where a.run_date = p_run_date and a.table_name = p_table and a.raw_table = v_raw
            on conflict (table_name, raw_table) do update
            set loaded_through = excluded.loaded_through, rows_through = excluded.rows_through,
                run_date = excluded.run_date, full_refresh = excluded.full_refresh
            -- A rerun that read nothing new leaves the watermark as it was (a rerun changes no table).
            where w.loaded_through <> excluded.loaded_through or excluded.full_refresh;
        end if;
    end loop;
    return n_quarantined;
end
$$
;;
-- What became of one raw row, the same rule in every staging model: a rejected row is quarantined; of
-- the accepted versions of a key the newest is staged (or merged into another identity), an identical
-- copy of the version before it in the same batch is a duplicate, any other older version superseded.
create or replace function staging.disposition(
    p_reject_code text, p_version_rank bigint, p_is_copy boolean,
    p_merged boolean default false
) returns text
language sql immutable parallel safe as $$
    select case
        when p_reject_code is not null then 'quarantined'
        when p_version_rank > 1 and p_is_copy then 'duplicate'
        when p_version_rank > 1 then 'superseded'
        when p_merged then 'merged'
        else 'staged'
    end
$$
;;
-- Identical copies are recorded in staging.merged_rows the same way for every model.
create or replace function staging.record_duplicates(p_raw_table text, p_kind text, p_run_date date)
returns void
language plpgsql as $$
begin
    insert into staging.merged_rows (run_date, table_name, kind, merged_key, surviving_key, source_ref, batch_id,
                                match_key)
    select p_run_date, p_raw_table, p_kind, c.row_key, c.row_key, c.source_ref, c._batch_id, c.content_hash
    from _checked as c
    where c.disposition = 'duplicate';
end
$$
;;
-- Clears what a model records besides its table before it records it again (reruns replace), and
-- gives the rebuild's sorts memory for the rest of its transaction.
create or replace function staging.begin_checked(p_raw_table text) returns void
language sql as $$
    select set_config('work_mem', '256MB', true);
    delete from staging.corrections where table_name = p_raw_table;
    delete from staging.merged_rows where table_name = p_raw_table;
$$
;;
-- Where an incrementally built model's run at p_run_ts reads on from: the cutoff of its last run, or null
-- (a full rebuild) without a state or watermark, for an older cutoff, when the raw rows up to the
-- watermark are no longer the ones that run counted (an erasure removed some, a batch landed behind it),
-- or when the table no longer holds the rows that run staged.
-- A full rebuild is asked for by deleting the model's row of staging.model_watermarks.
create or replace function staging.watermark(p_table text, p_raw_table text, p_run_ts timestamptz)
returns timestamptz
language plpgsql stable as $$
declare
    v_mark staging.model_watermarks;
    n bigint;
begin
    if to_regclass('staging_state.' || split_part(p_table, '.', 2)) is null then
        return null;
    end if;
    select * into v_mark from staging.model_watermarks as w
    where w.table_name = p_table and w.raw_table = p_raw_table;
    if not found or v_mark.loaded_through > p_run_ts then
        return null;
    end if;
    execute format('select count(*) from %s where _loaded_at <= $1', p_raw_table) into n using v_mark.loaded_through;
    if n <> v_mark.rows_through then
        return null;
    end if;
    -- The table itself as that run left it (a row deleted or added by hand is put right by a full rebuild).
    execute format('select count(*) from %s', p_table) into n;
    return case when n = (select a.rows_staged from staging.row_accounting as a
                          where a.run_date = v_mark.run_date and a.table_name = p_table
                            and a.raw_table = p_raw_table) then v_mark.loaded_through end;
end
$$
;;
-- The start of an incrementally built model (p_table fed by p_raw_table alone). Without a watermark
-- (staging.watermark): a full rebuild (the table emptied, everything the model records about its raw table
-- cleared, its state written anew by finish_checked). With one, only raw rows landed after it
-- (staging.since) and the rows to judge again (staging.rows_to_recheck) are judged; settle_checked adds the
-- earlier rows of every key they touch from the model's state (staging_state.<table>: the settled raw rows
-- of the last run) and clears what was recorded about those keys only. The mode holds for the rest of the
-- model's transaction.
create or replace function staging.begin_checked(p_raw_table text, p_table text, p_run_ts timestamptz)
returns void
language plpgsql as $$
declare
    v_since timestamptz := staging.watermark(p_table, p_raw_table, p_run_ts);
begin
    perform set_config('work_mem', '256MB', true);
    perform set_config('martech.state_table', 'staging_state.' || split_part(p_table, '.', 2), true);
    perform set_config('martech.since', coalesce(v_since::text, ''), true);
    if v_since is null then
        perform staging.begin_checked(p_raw_table);
        execute format('truncate %s', p_table);
    end if;
end
$$
;;
-- Incremental mode (staging.begin_checked found a watermark): the state table of the model, else null.
create or replace function staging.state_table() returns text
language sql stable as $$
    select case when coalesce(current_setting('martech.since', true), '') <> ''
                then current_setting('martech.state_table', true) end
$$
;;
-- The raw rows to judge are those landed after this (-infinity in a full rebuild).
create or replace function staging.since() returns timestamptz
language sql stable as $$
    select coalesce(nullif(current_setting('martech.since', true), '')::timestamptz, '-infinity')
$$
;;
-- Whether a model's run judges a raw row: landed up to the run's cutoff (p_run_ts) and after the model's
-- watermark (p_since: staging.since(), -infinity in a full rebuild), or one its last run left to judge again
-- (p_recheck: its position is among staging.rows_to_recheck). Plain SQL, so the planner inlines it and the
-- scan is planned as the expression written out (the watermark once per statement, the positions hashed).
create or replace function staging.in_scope(
    p_loaded_at timestamptz, p_run_ts timestamptz, p_since timestamptz, p_recheck boolean
) returns boolean
language sql immutable parallel safe as $$
    select p_loaded_at <= p_run_ts and (p_loaded_at > p_since or p_recheck)
$$
;;
-- In incremental mode, the raw rows of the model's last run to judge again (their physical positions):
-- the rows it held as future-dated, as their time may have come, and those p_also (a condition on the
-- state's columns, alias s) names: rows whose judgement depends on another table, e.g. an order line
-- waiting for its order. Nothing in a full rebuild, which judges every row.
create or replace function staging.rows_to_recheck(p_also text default null) returns setof tid
language plpgsql stable as $$
begin
    if staging.state_table() is not null then
        return query execute format(
            'select s.row_position from %s as s'
            ' where s.reject_code in (''future_timestamp'', ''future_updated_at'')%s',
            staging.state_table(), coalesce(' or ' || p_also, ''));
    end if;
end
$$
;;
-- Two versions of one key with the same updated_at and different content: staging keeps one (the later
-- batch, or the earlier line of one batch) and records the other here, kind conflicting_version, naming the
-- version kept, so the conflict is never silent. p_key: the key column of _checked (row_key for compound keys).
create or replace function staging.record_conflicts(p_raw_table text, p_key text, p_run_date date)
returns void
language plpgsql as $$
begin
    execute format(
        'insert into staging.corrections (run_date, table_name, row_key, source_ref, batch_id, kind, field,'
        ' original_value, corrected_value)'
        ' select $1, $2, c.row_key, c.source_ref, c._batch_id, ''conflicting_version'', ''updated_at'','
        ' c.updated_at, ''kept the version of batch '' || s._batch_id || '' ('' || s.source_ref || '')'''
        ' from _checked as c join _checked as s on s.%1$I = c.%1$I and s.disposition in (''staged'', ''merged'')'
        ' where c.disposition = ''superseded'' and s.updated_ts = c.updated_ts and s.content_hash <> c.content_hash',
        p_key)
    using p_run_date, p_raw_table;
end
$$
;;
-- The orders with a line staging.order_items held as future-dated in its last run: their line totals may
-- change once the line is due (staging.orders judges them again).
create or replace function staging.order_ids_of_held_lines() returns setof bigint
language plpgsql stable as $$
begin
    if to_regclass('staging_state.order_items') is not null then
        return query select s.k_order_id from staging_state.order_items as s
        where s.reject_code in ('future_timestamp', 'future_updated_at');
    end if;
end
$$
;;
-- Incremental mode: the keys the newly judged rows of _judged touch (_touched), their earlier raw rows
-- added to _judged from the model's state, and what was recorded about those keys cleared, so that they
-- are settled again exactly as a full rebuild settles them.
create or replace function staging.add_touched_keys(p_raw_table text) returns void
language plpgsql as $$
declare
    v_cols text := (select string_agg(quote_ident(a.attname), ', ' order by a.attnum) from pg_attribute as a
                    where a.attrelid = '_judged'::regclass and a.attnum > 0 and not a.attisdropped);
begin
    create temporary table _touched on commit drop as select distinct j.row_key from _judged as j;
    analyze _touched;
    execute format(
        'insert into _judged (%1$s) select %1$s from %2$s as s'
        ' where s.row_key in (select t.row_key from _touched as t)'
        ' and not exists (select 1 from _judged as j where j.row_position = s.row_position)',
        v_cols, staging.state_table());
    delete from staging.corrections as c
    where c.table_name = p_raw_table and c.row_key in (select t.row_key from _touched as t);
    delete from staging.merged_rows as m
    where m.table_name = p_raw_table and m.merged_key in (select t.row_key from _touched as t);
end
$$
;;
-- The versions of each key, ranked the same way in every staging model. The model builds a temporary table
-- _judged with one row per raw row (its key columns, reject_code, reject_reason, row_key, source_ref,
-- content_hash, updated_ts, _loaded_at, _batch_id and row_position); this turns it into _checked with each
-- row's version_rank, is_copy and disposition, then records the identical copies (kind p_duplicate_kind) and
-- the conflicting versions. p_key: the model's key columns (a compound key's conflicts are matched on row_key).
create or replace function staging.settle_checked(
    p_raw_table text, p_key text[], p_duplicate_kind text, p_run_date date
) returns void
language plpgsql as $$
declare
    v_key text := (select string_agg(format('j.%I', k.col), ', ' order by k.n)
                   from unnest(p_key) with ordinality as k (col, n));
begin
    if staging.state_table() is not null then
        perform staging.add_touched_keys(p_raw_table);
    end if;
    -- An identical copy sorts next to the row it copies (same times), so one window finds both.
    execute format(
        'create temporary table _checked on commit drop as'
        ' select k.*, staging.disposition(k.reject_code, k.version_rank, k.is_copy) as disposition'
        ' from (select j.*, row_number() over versions as version_rank,'
        '       coalesce(lag(j.content_hash) over versions = j.content_hash'
        '                and lag(j._batch_id) over versions = j._batch_id, false) as is_copy'
        '       from _judged as j'
        '       window versions as (partition by j.reject_code is null, %s'
        '                           order by j.updated_ts desc, j._loaded_at desc, j.row_position asc)) as k',
        v_key);
    drop table _judged;
    perform staging.record_duplicates(p_raw_table, p_duplicate_kind, p_run_date);
    perform staging.record_conflicts(
        p_raw_table, case when cardinality(p_key) = 1 then p_key[1] else 'row_key' end, p_run_date);
end
$$
