"""The embedded warehouse: starts on demand, keeps its URL across restarts, stops cleanly."""

from __future__ import annotations

import psycopg2
import pytest

from martech.warehouse import EmbeddedPostgres

pytestmark = pytest.mark.integration


def test_embedded_lifecycle(tmp_path):
    pg = EmbeddedPostgres(tmp_path / "wh")
    url = pg.ensure_running()
    assert url.startswith("postgresql://postgres@127.0.0.1:") and url.endswith("/martech")
    assert pg.ensure_running() == url  # already running: reused
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("create table kept (x int); insert into kept values (42)")
    assert pg.stop() is True
    assert not pg.is_running()
    assert pg.stop() is False
    assert pg.ensure_running() == url  # same port after a restart, data kept
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("select x from kept")
        assert cur.fetchone() == (42,)
    pg.stop()


def test_a_data_folder_too_deep_for_a_socket_path_still_starts(tmp_path):
    root = tmp_path / ("d" * 60) / ("e" * 60)  # the socket file's path would pass 107 bytes
    pg = EmbeddedPostgres(root)
    assert len(f"{pg.pgdata}/.s.PGSQL.54321".encode()) > 107
    url = pg.ensure_running()
    try:
        assert len(f"{pg.socket_dir(pg.port())}/.s.PGSQL.{pg.port()}".encode()) <= 107
        with psycopg2.connect(url) as conn, conn.cursor() as cur:
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
    finally:
        assert pg.stop() is True
