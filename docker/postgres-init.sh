#!/usr/bin/env bash
# First start of the team stack's PostgreSQL (docker-entrypoint-initdb.d): beside Airflow's metadata
# database (POSTGRES_DB), the warehouse database owned by the pipeline's role, and a read-only `analyst`
# login that may read the marts and kpis schemas (tables created later by the pipeline included).
set -euo pipefail
: "${WAREHOUSE_PASSWORD:?set WAREHOUSE_PASSWORD in .env}"
: "${ANALYST_PASSWORD:?set ANALYST_PASSWORD in .env}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v warehouse_password="$WAREHOUSE_PASSWORD" -v analyst_password="$ANALYST_PASSWORD" <<'SQL'
create role martech login password :'warehouse_password';
create role analyst login password :'analyst_password';
create database martech owner martech;
SQL

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname martech <<'SQL'
revoke create on schema public from public;
grant connect on database martech to analyst;
set role martech;
create schema if not exists marts;
create schema if not exists kpis;
grant usage on schema marts, kpis to analyst;
grant select on all tables in schema marts, kpis to analyst;
alter default privileges in schema marts, kpis grant select on tables to analyst;
reset role;
alter role analyst set default_transaction_read_only = on;
SQL
