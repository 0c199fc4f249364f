"""Shared fixtures.

Database tests run against a throwaway database created for the test session:
- on the PostgreSQL named by ``MARTECH_TEST_DATABASE_URL`` when it is set (a database
  ``martech_test_<pid>`` is created there and dropped afterwards; ``<name>_<pid>`` when the URL names a
  database other than ``postgres``, so people sharing a server can keep to a prefix of their own), otherwise
- on an embedded PostgreSQL started from the pgserver wheel in a temporary folder, so a clean clone
  needs no server and never touches the developer's own ``.martech`` warehouse.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pytest

# Tests must never write into the developer's .martech folder.
_TEST_HOME = Path(tempfile.mkdtemp(prefix="martech-test-"))
atexit.register(shutil.rmtree, _TEST_HOME, ignore_errors=True)
os.environ["MARTECH_HOME"] = str(_TEST_HOME)
os.environ.pop("MARTECH_WAREHOUSE_URL", None)
for _key in [k for k in os.environ if k.startswith("AIRFLOW")]:
    os.environ.pop(_key)
# Airflow reads its configuration when first imported: point it at a throwaway SQLite and our DAGs
# before any test imports it.
from martech.devtools import airflow_env  # noqa: E402

airflow_env.configure()


def _admin_url(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def warehouse_url() -> Iterator[str]:
    """URL of an empty database that lives for the whole test session."""
    import psycopg2

    server_url = os.environ.get("MARTECH_TEST_DATABASE_URL")
    embedded = None
    if not server_url:
        from martech.warehouse import EmbeddedPostgres

        embedded = EmbeddedPostgres(_TEST_HOME / "warehouse", database="postgres")
        server_url = embedded.ensure_running()
    given = server_url.rsplit("/", 1)[-1].split("?", 1)[0]
    dbname = f"{given}_{os.getpid()}" if embedded is None and given not in ("", "postgres") else f"martech_test_{os.getpid()}"
    admin = psycopg2.connect(_admin_url(server_url, "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'drop database if exists "{dbname}"')
        cur.execute(f'create database "{dbname}"')
    url = _admin_url(server_url, dbname)
    os.environ["MARTECH_WAREHOUSE_URL"] = url
    try:
        yield url
    finally:
        os.environ.pop("MARTECH_WAREHOUSE_URL", None)
        with admin.cursor() as cur:
            cur.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (dbname,)
            )
            cur.execute(f'drop database if exists "{dbname}"')
        admin.close()
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(_TEST_HOME, ignore_errors=True)


# Markers that say a test needs the warehouse database; a test using it without one is a collection error,
# so `-m "not db"` (or leaving out integration / e2e) really selects tests that run without PostgreSQL.
DATABASE_MARKERS = frozenset({"db", "integration", "e2e"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items
                if "warehouse_url" in getattr(item, "fixturenames", ())
                and not DATABASE_MARKERS & {m.name for m in item.iter_markers()}]
    if unmarked:
        raise pytest.UsageError("these tests use the database but are not marked db, integration or e2e: "
                                + ", ".join(unmarked))


@pytest.fixture(scope="session")
def engine(warehouse_url: str):
    """A SQLAlchemy engine on the session database, with every landing table migrated."""
    from martech.db import make_engine, migrate

    eng = make_engine(warehouse_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def warehouse(warehouse_url: str):
    """The session database as the stages take it: one :class:`martech.warehouse.Warehouse` (one engine)."""
    from martech.warehouse import Warehouse

    with Warehouse(warehouse_url) as wh:
        yield wh


class ModuleWarehouse(NamedTuple):
    engine: Any
    url: str

    def create(self, ddl: str) -> Any:
        """The engine, once ``ddl`` (the module's own minimal source tables) has run."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(ddl)
        return self.engine

    def truncate(self, tables: Sequence[str]) -> Any:
        """The engine, with ``tables`` emptied."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(f"truncate {', '.join(tables)}")
        return self.engine


@pytest.fixture(scope="module")
def module_warehouse(request: pytest.FixtureRequest, warehouse_url: str) -> Iterator[ModuleWarehouse]:
    """A database of the test module's own beside the session database, with every landing table migrated.

    For modules that create their own minimal source tables (staging.*, marts.*) which must not collide
    with the real ones other tests build. Named after the module; dropped after its last test.
    """
    from sqlalchemy.engine import make_url

    from martech.db import make_engine, migrate, scratch_database

    name = f"{make_url(warehouse_url).database}_{request.module.__name__.rpartition('.')[2].removeprefix('test_')}"
    with scratch_database(warehouse_url, name) as db_url:
        eng = make_engine(db_url)
        try:
            migrate(eng)
            yield ModuleWarehouse(eng, db_url)
        finally:
            eng.dispose()


@pytest.fixture()
def scratch_schema(engine) -> Iterator[str]:
    """A schema of its own for one test, dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    name = f"t_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"create schema {name}"))
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text(f"drop schema {name} cascade"))


@pytest.fixture()
def tmp_landing(tmp_path: Path) -> Path:
    path = tmp_path / "landing"
    path.mkdir()
    return path


PIPELINE_SCHEMAS = ("shop", "sim_truth", "raw", "staging", "marts", "audiences", "campaigns", "kpis")


@pytest.fixture()
def clean_warehouse(engine):
    """Every pipeline schema dropped and the landing tables migrated afresh."""
    _reset_pipeline_schemas(engine)
    return engine


def _reset_pipeline_schemas(engine) -> None:
    import sqlalchemy as sa

    from martech.db import migrate

    with engine.begin() as conn:
        for schema in PIPELINE_SCHEMAS:
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
    migrate(engine)


class SimulatedStaging:
    """Called with a date: a fresh warehouse holding a simulated shop, ingested and staged for it (the options
    go to generate_sources); returns the engine and keeps the staging summary in ``summary``."""

    def __init__(self, engine, warehouse, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.engine, self.warehouse, self.tmp_path_factory = engine, warehouse, tmp_path_factory
        self.summary: dict[str, Any] = {}

    def __call__(self, as_of, *, customers: int, seed: int, **sources: Any):
        from martech import pipeline
        from martech.simulate import generate_sources

        _reset_pipeline_schemas(self.engine)
        landing = self.tmp_path_factory.mktemp("landing")
        generate_sources(self.engine, landing, as_of=as_of, customers=customers, seed=seed, **sources)
        pipeline.ingest_shop(self.warehouse, as_of)
        pipeline.ingest_crm(self.warehouse, as_of, folder=landing / "crm")
        self.summary = pipeline.build_staging(self.warehouse, as_of)
        return self.engine


@pytest.fixture(scope="module")
def simulated_staging(engine, warehouse, tmp_path_factory) -> SimulatedStaging:
    """A factory: a fresh warehouse holding a simulated shop, ingested and staged for ``as_of``."""
    return SimulatedStaging(engine, warehouse, tmp_path_factory)


@pytest.fixture()
def fast_http_retries() -> Iterator[None]:
    """The SaaS connectors' HTTP client retries without waiting (its testing switch), for one test."""
    from martech.ingest.connectors import _http

    _http.set_testing(True)
    yield
    _http.set_testing(False)


@pytest.fixture()
def hub() -> Iterator[Any]:
    """The HubSpot CRM v3 stand-in on loopback, token ``tok``."""
    from martech.testing.fake_hubspot import FakeHubSpot

    with FakeHubSpot(token="tok") as fake:
        yield fake


@pytest.fixture()
def shop() -> Iterator[Any]:
    """The Shopify Admin REST stand-in on loopback, token ``shpat_test``."""
    from martech.testing.fake_shopify import FakeShopify

    with FakeShopify(token="shpat_test") as fake:
        yield fake


@pytest.fixture()
def src() -> str:
    """A source name of this test's own, so its landed rows are told apart by ``_source``."""
    import uuid

    return f"src_{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def crash_page_commit():
    """``with crash_page_commit(n, exc):`` the SaaS connectors' page write (``_land.copy_rows``) raises
    ``exc`` on its n-th call after the rows were written, i.e. before that page commits."""
    from contextlib import contextmanager

    from martech.ingest.connectors import _land

    @contextmanager
    def crashing(n: int, exc: BaseException) -> Iterator[None]:
        real = _land.copy_rows
        calls = 0

        def copy_rows(*args: Any, **kwargs: Any) -> int:
            nonlocal calls
            calls += 1
            written = real(*args, **kwargs)
            if calls == n:
                raise exc
            return written

        _land.copy_rows = copy_rows  # type: ignore[assignment]
        try:
            yield
        finally:
            _land.copy_rows = real  # type: ignore[assignment]

    return crashing

