-- materialized: functions
-- The steps every staging model shares to account for its raw rows (staging.row_accounting,
-- staging.merged_rows, staging.corrections, raw.quarantine). Applied by martech.db.migrate after
-- the tables they write.

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
        delete from raw.quarantine where stage = 'staging' and table_name = v_raw;
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

        delete from staging.row_accounting
        where run_date = p_run_date and table_name = p_table and raw_table = v_raw;
        insert into staging.row_accounting
        select p_run_date, p_table, v_raw, count(*),
               count(*) filter (where c.disposition = 'staged'),
               count(*) filter (where c.disposition = 'quarantined'),
               count(*) filter (where c.disposition = 'duplicate'),
               count(*) filter (where c.disposition = 'superseded'),
               count(*) filter (where c.disposition = 'merged'),
               (select count(*) from raw.quarantine as q
                join raw.ingest_batches as b on b.batch_id = q.batch_id
                where q.stage = 'landing' and q.table_name = v_raw and b.loaded_at <= p_run_ts)
        from _checked as c
        where c.raw_table = v_raw;
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
