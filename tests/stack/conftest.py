"""What the stack tests share: skipping loudly without their services, and checking they left nothing behind."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import pytest


@pytest.fixture()
def require_services() -> Callable[[str, Sequence[str]], None]:
    """Skip ("<WHAT> NOT TESTED — not answering: ...") when services are missing; fail instead when
    MARTECH_REQUIRE_SERVICES=1."""
    def check(what: str, missing: Sequence[str]) -> None:
        if missing:
            reason = f"{what} NOT TESTED — not answering: {'; '.join(missing)}"
            if os.environ.get("MARTECH_REQUIRE_SERVICES") == "1":
                pytest.fail(reason + " (MARTECH_REQUIRE_SERVICES=1)")
            pytest.skip(reason)
    return check


@pytest.fixture()
def assert_nothing_left() -> Callable[[dict, str], None]:
    """No process group of ``result["pids"]`` alive and no database of ``result["databases"]`` left on ``pg_url``."""
    def check(result: dict, pg_url: str) -> None:
        import psycopg2

        for pid in result["pids"]:
            with pytest.raises(ProcessLookupError):
                os.killpg(pid, 0)
        conn = psycopg2.connect(pg_url)
        with conn.cursor() as cur:
            cur.execute("select count(*) from pg_database where datname = any(%s)", (result["databases"],))
            assert cur.fetchone()[0] == 0
        conn.close()
    return check
