"""The team stack's compose file, checked without Docker.

Against the Compose Specification's JSON schema (vendored in tests/contracts/compose), before and after
interpolating .env.example; every command parses with the Airflow or martech CLI; every mounted path and
script exists in the repository; every setting has a line in .env.example and no secret is committed;
the Dockerfile installs exactly the lock.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = ROOT / "tests" / "contracts" / "compose" / "compose-spec.json"
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|_KEY$")
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker")


def _text() -> str:
    return COMPOSE.read_text()


def _compose() -> dict:
    return yaml.safe_load(_text())


def _env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _interpolated() -> dict:
    """The file as docker compose would see it with .env.example's values (empty secrets filled in)."""
    values = {k: v or "x" for k, v in _env_example().items()}
    return yaml.safe_load(VARIABLE.sub(lambda m: values[m.group(1)], _text()).replace("$$", "$"))


@pytest.mark.parametrize("doc", [_compose, _interpolated], ids=["as-written", "interpolated"])
def test_compose_file_follows_the_compose_specification(doc):
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc())]
    assert errors == []


def test_the_stack_has_every_service_with_a_healthcheck():
    services = _compose()["services"]
    assert set(services) >= {"postgres", "redis", "mailpit", "airflow-init", *AIRFLOW_SERVICES, "webhook"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    tests = {name: " ".join(s["healthcheck"]["test"]) for name, s in services.items()}
    assert "pg_isready" in tests["postgres"]
    assert "redis-cli ping" in tests["redis"]
    assert "/api/v2/version" in tests["airflow-apiserver"]
    assert "localhost:8974/health" in tests["airflow-scheduler"]
    assert "airflow jobs check --job-type DagProcessorJob" in tests["airflow-dag-processor"]
    assert "airflow jobs check --job-type TriggererJob" in tests["airflow-triggerer"]
    assert "inspect ping" in tests["airflow-worker"]


def test_celery_settings_are_shared_and_point_at_the_services():
    services = _interpolated()["services"]
    envs = {name: services[name]["environment"] for name in AIRFLOW_SERVICES}
    for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CELERY__BROKER_URL",
                "AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__FERNET_KEY"):
        values = {env.get(key) for env in envs.values()}
        assert len(values) == 1 and None not in values, f"{key} differs or is missing: {values}"
    env = envs["airflow-scheduler"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379/")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert any(p.endswith(":8080") for p in services["airflow-apiserver"]["ports"])
    assert services["airflow-worker"]["deploy"]["replicas"] >= 2
    # Mails go to the SMTP sink: the smtp transport, and the init service's smtp connection is Mailpit.
    assert env["MARTECH_TRANSPORT"] == "smtp"
    assert "smtp://mailpit:1025" in (ROOT / "docker" / "airflow-init.sh").read_text()
    assert services["webhook"]["command"][-1].endswith("martech webhook --host 0.0.0.0 --port 8090")
    assert any(p.endswith(":8090") for p in services["webhook"]["ports"])


def _airflow_parser():
    from airflow.cli.cli_parser import get_parser

    return get_parser()


def _airflow_commands() -> list[tuple[str, list[str]]]:
    """Every Airflow CLI call of the stack: service commands, healthchecks and the init script's lines."""
    services = _compose()["services"]
    calls = []
    for name in AIRFLOW_SERVICES:
        command = services[name]["command"]
        calls.append((name, command.split() if isinstance(command, str) else command))
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        shell = test[1] if test[0] == "CMD-SHELL" else " ".join(test[1:])
        for part in shell.split("||"):
            words = shlex.split(part.replace("$${HOSTNAME}", "host"))
            if words and words[0] == "airflow":
                calls.append((f"{name} healthcheck", words[1:]))
    script = (ROOT / "docker" / "airflow-init.sh").read_text()
    for match in re.finditer(r"^\s*(?:if\s+)?airflow ([^>|;&\n]+)", script, re.MULTILINE):
        words = [w if not w.startswith("$") else "x" for w in shlex.split(match.group(1))]
        calls.append(("airflow-init.sh", words))
    return calls


def test_every_airflow_command_parses():
    parser = _airflow_parser()
    calls = _airflow_commands()
    assert len(calls) >= 10
    for where, args in calls:
        try:
            parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{where}: `airflow {' '.join(args)}` is not an Airflow command")


def test_worker_healthcheck_names_the_celery_app():
    import importlib

    test = _compose()["services"]["airflow-worker"]["healthcheck"]["test"][1]
    module, _, attr = re.search(r"--app (\S+)", test).group(1).rpartition(".")
    assert hasattr(importlib.import_module(module), attr)


def test_the_webhook_command_exists():
    from martech.cli import build_parser

    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    assert "webhook" in subcommands
    command = _compose()["services"]["webhook"]["command"][-1]
    parser.parse_args(shlex.split(command.removeprefix("exec "))[1:])


def test_mounted_paths_and_scripts_exist():
    doc = _compose()
    named = set(doc["volumes"])
    mounts = 0
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
                mounts += 1
            else:
                assert source in named, f"{name} uses volume {source}, not declared under volumes:"
        command = service.get("command")
        for word in command if isinstance(command, list) else []:
            if word.startswith("/opt/martech/docker/"):
                host = ROOT / "docker" / Path(word).name
                assert host.exists() and host.stat().st_mode & 0o111, f"{name} runs {word}: missing or not executable"
                assert any(v.split(":")[1] == word for v in service["volumes"]), f"{name} does not mount {word}"
    assert mounts >= 5
    assert (ROOT / "docker" / "postgres-init.sh").stat().st_mode & 0o111


def test_every_setting_is_in_env_example_and_no_secret_is_committed():
    example = _env_example()
    used = set(VARIABLE.findall(_text()))
    assert used - set(example) == set(), "settings missing from .env.example"
    scripts = "".join(p.read_text() for p in (ROOT / "docker").glob("*.sh"))
    team = set(example).difference(k for k in example if k.startswith("MARTECH_") and k not in used)
    assert team - used - set(re.findall(r"\$\{?([A-Z_]+)", scripts)) == set(), "unused settings in .env.example"
    for key, value in example.items():
        if SECRET_NAME.search(key):
            assert value == "", f".env.example commits a value for {key}"
    # Passwords in URLs are always references to a setting.
    urls = re.findall(r"://(\w+):(\$\{[^}]*\}|[^@/\s]*)@", _text())
    assert len(urls) >= 3
    for user, password in urls:
        assert VARIABLE.fullmatch(password), f"literal password for {user} in docker-compose.yml"
    for ignore in (".gitignore", ".dockerignore"):
        assert ".env" in (ROOT / ignore).read_text().split(), f".env is not in {ignore}"


def test_postgres_init_creates_the_warehouse_and_a_read_only_analyst():
    script = (ROOT / "docker" / "postgres-init.sh").read_text().lower()
    assert "create database martech owner martech" in script
    assert "grant select on all tables in schema marts, kpis to analyst" in script
    assert "alter default privileges in schema marts, kpis grant select on tables to analyst" in script
    assert "default_transaction_read_only = on" in script
    assert not re.search(r"grant (insert|update|delete|all)[^;]*analyst", script)
    mounts = _compose()["services"]["postgres"]["volumes"]
    assert "./docker/postgres-init.sh:/docker-entrypoint-initdb.d/10-martech.sh:ro" in mounts


def test_dockerfile_installs_exactly_the_lock():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    base = next(line.split()[1] for line in lines if line.startswith("FROM "))
    pinned = re.search(r"^apache-airflow==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE).group(1)
    assert base.startswith(f"apache/airflow:{pinned}-"), f"image {base} is not the lock's Airflow {pinned}"
    copied = {parts[-2]: parts[-1] for parts in (line.split() for line in lines if line.startswith("COPY "))}
    installs = [line for line in lines if "pip install" in line]
    assert installs == [f"RUN pip install --no-cache-dir -r {copied['requirements.txt']}",
                        "RUN pip install --no-cache-dir --no-deps -e /opt/martech"]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"requirements.txt", "include", "pyproject.toml"} & set(ignored)


def test_analyst_reads_marts_and_kpis_and_nothing_else(tmp_path):
    """The init script for real, on the PostgreSQL server, with role and database names of this run."""
    import os
    import secrets
    import subprocess
    import urllib.parse

    import psycopg2

    server = os.environ.get("MARTECH_CELERY_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    parts = urllib.parse.urlsplit(server)
    try:
        psycopg2.connect(server, connect_timeout=2).close()
    except psycopg2.OperationalError as exc:
        reason = f"ANALYST ROLE NOT TESTED — no PostgreSQL server at {parts.hostname}:{parts.port}: {exc}"
        if os.environ.get("MARTECH_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    token = secrets.token_hex(4)
    owner, analyst = f"martech_probe_{token}", f"analyst_probe_{token}"
    script = tmp_path / "init.sh"
    text = (ROOT / "docker" / "postgres-init.sh").read_text()
    script.write_text(re.sub(r"\bmartech\b", owner, re.sub(r"\banalyst\b", analyst, text)))
    env = {**os.environ, "PGHOST": parts.hostname or "127.0.0.1", "PGPORT": str(parts.port or 5432),
           "POSTGRES_USER": parts.username or "postgres", "POSTGRES_DB": parts.path.lstrip("/") or "postgres",
           "WAREHOUSE_PASSWORD": "probe", "ANALYST_PASSWORD": "probe"}
    admin = psycopg2.connect(server)
    admin.autocommit = True
    try:
        subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True)
        url = f"postgresql://{{user}}:probe@{env['PGHOST']}:{env['PGPORT']}/{owner}"
        with psycopg2.connect(url.format(user=owner)) as conn, conn.cursor() as cur:
            # Tables the pipeline creates later, in the schemas analysts may and may not read.
            cur.execute("create table marts.m as select 1 as a; create table kpis.k as select 2 as b;"
                        " create schema staging; create table staging.s as select 3 as c")
        with psycopg2.connect(url.format(user=analyst)) as conn, conn.cursor() as cur:
            cur.execute("select a, b from marts.m, kpis.k")
            assert cur.fetchall() == [(1, 2)]
            for statement in ("select * from staging.s", "insert into marts.m values (9)",
                              "create table public.x (a int)"):
                cur.execute("savepoint s")
                with pytest.raises(psycopg2.Error):
                    cur.execute(statement)
                cur.execute("rollback to savepoint s")
    finally:
        with admin.cursor() as cur:
            cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (owner,))
            cur.execute(f'drop database if exists "{owner}"')
            cur.execute(f'drop role if exists "{analyst}"')
            cur.execute(f'drop role if exists "{owner}"')
        admin.close()
