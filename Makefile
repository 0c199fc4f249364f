# martech — run `make` for the list of targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV  := .venv
BIN   := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The first interpreter between 3.10 and 3.12 (pgserver publishes wheels for those only).
PY ?= $(shell for p in python3 python3.12 python3.11 python3.10; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,10) <= sys.version_info[:2] <= (3,12))' \
	2>/dev/null && { echo $$p; break; }; done)

.PHONY: help install demo test test-stack test-fast airflow lint bench bench-quick lock clean stop celery-demo

help: ## Show this help
	@echo "martech — warehouse-native marketing automation on Apache Airflow"
	@echo
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml Makefile
	@if [ -z "$(PY)" ]; then echo "Python 3.10-3.12 is needed (pgserver has no wheels for newer ones); set PY=/path/to/python"; exit 1; fi
	@echo "installing into $(VENV) with $$($(PY) --version) ..."
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	@$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@# uv writes no bytecode, and with PYTHONDONTWRITEBYTECODE set (as in many dev containers) Python
	@# never caches it: every process (the demo, each Airflow task) would compile the stack again, ~9 CPU-s.
	@echo "compiling bytecode ..."
	@$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
	  include dags plugins >/dev/null || echo "compileall reported files it could not compile (harmless)"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned stack (done by the other targets)

demo: $(STAMP) ## Simulate a shop, run every DAG through Airflow, print what happened
	@$(BIN)/martech demo

test: $(STAMP) ## The test suite but the stack tests (embedded PostgreSQL; MARTECH_TEST_DATABASE_URL for a server)
	@$(BIN)/pytest -q -p no:cacheprovider --timeout=900 -m "not stack" $(PYTEST_ARGS)

test-stack: $(STAMP) ## Airflow's real processes: the scheduler concurrency check and the Celery chain (~20 min)
	@$(BIN)/pytest -q -p no:cacheprovider --timeout=2400 -m stack -s $(PYTEST_ARGS)

test-fast: $(STAMP) ## Unit and DAG tests (under a minute; PYTEST_ARGS="-m 'not db'" runs no database)
	@$(BIN)/pytest -q -p no:cacheprovider --timeout=300 tests/unit tests/dags $(PYTEST_ARGS)

PORT ?= 8080
airflow: $(STAMP) ## Airflow standalone (UI on :8080, PORT=... for another) with these DAGs on the same warehouse
	@eval "$$($(BIN)/martech airflow-env)" && export PATH="$(abspath $(BIN)):$$PATH" && \
	  export AIRFLOW__API__PORT=$(PORT) AIRFLOW__API__BASE_URL=http://localhost:$(PORT) && \
	  echo "Airflow UI: http://localhost:$(PORT)  user: admin  password: printed below and in $$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" && \
	  $(BIN)/airflow standalone

celery-demo: $(STAMP) ## CeleryExecutor here: two workers on Redis :6379 and PostgreSQL :5432, the daily chain
	@$(BIN)/python docker/celery_local.py

lint: $(STAMP) ## ruff (incl. AIR rules), mypy on the package, sqlfluff on include/sql and the audience SQL
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/sqlfluff lint include/sql include/campaigns/audiences --disable-progress-bar

lock: ## Recompile requirements.txt from requirements.in (Python 3.10-3.12)
	$(BIN)/uv pip compile --universal --python-version 3.10 requirements.in -o requirements.txt

stop: $(STAMP) ## Stop the embedded warehouse
	@$(BIN)/martech warehouse stop

clean: ## Remove local state (.martech); keeps .venv
	-@$(BIN)/martech warehouse stop 2>/dev/null
	rm -rf .martech

bench: $(STAMP) ## Benchmarks at large scale: the daily chain at 100k/300k/1M customers, then each part
	$(BIN)/python -m martech.devtools.bench_chain --customers 100000 300000 1000000
	$(BIN)/python -m martech.devtools.bench ingest --orders 1000000
	$(BIN)/python -m martech.devtools.bench clv --customers 1000000
	$(BIN)/python -m martech.devtools.bench dispatch --recipients 100000
	$(BIN)/python -m martech.devtools.bench rfm-duckdb --customers 1000000 --orders 10000000
	$(BIN)/python -m martech.devtools.bench models --customers 1000000 --orders 10000000
	$(BIN)/python -m martech.events.bench --events 100000 --posters 8

bench-quick: $(STAMP) ## The daily chain at 100k customers only (bench/results/<date>.json and .md)
	$(BIN)/python -m martech.devtools.bench_chain --quick
