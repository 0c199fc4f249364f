#!/usr/bin/env bash
# The team stack's one-off init service: Airflow's metadata migrations, then the connections the DAGs
# use (created once; change them later in the UI or with `airflow connections`).
set -euo pipefail

airflow db migrate

add_connection() {  # name uri
  if airflow connections get "$1" >/dev/null 2>&1; then
    echo "connection $1 exists: kept"
  else
    airflow connections add "$1" --conn-uri "$2"
  fi
}
add_connection warehouse "postgresql://martech:${WAREHOUSE_PASSWORD}@postgres:5432/martech"
# Mailpit takes any mail on 1025 without authentication and shows it at http://localhost:8025.
add_connection smtp "smtp://mailpit:1025"
echo "airflow-init done"
