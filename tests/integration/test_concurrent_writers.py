"""Writers of a shared table take their row locks in one order, so concurrent runs wait for each other
instead of deadlocking."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa

from martech.campaigns.suppressions import Suppression, add_suppressions

pytestmark = pytest.mark.integration

AT = dt.datetime(2026, 5, 4, tzinfo=dt.timezone.utc)


def _s(email: str) -> Suppression:
    return Suppression(email=email, reason="sunset", created_at=AT, source="test")


def _waiting_for_lock(engine, pid: int) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(sa.text("select wait_event_type = 'Lock' from pg_stat_activity where pid = :p"),
                                 {"p": pid}).scalar())


def test_overlapping_suppressions_in_opposite_orders_do_not_deadlock(engine):
    a, b = "order-a@example.com", "order-b@example.com"
    with engine.begin() as conn:
        conn.execute(sa.text("delete from campaigns.suppressions where email = any(:e)"), {"e": [a, b]})
    other_pid: list[int] = []
    other_error: list[BaseException] = []

    def other_writer():  # names the addresses the other way round
        try:
            with engine.begin() as conn:
                other_pid.append(conn.execute(sa.text("select pg_backend_pid()")).scalar_one())
                add_suppressions(conn, [_s(b), _s(a)])
        except BaseException as exc:
            other_error.append(exc)

    with engine.begin() as conn:
        add_suppressions(conn, [_s(a)])
        thread = threading.Thread(target=other_writer)
        thread.start()
        deadline = time.monotonic() + 10
        while not (other_pid and _waiting_for_lock(engine, other_pid[0])):
            assert time.monotonic() < deadline, "the other writer never waited for the shared address"
            time.sleep(0.05)
        # The other writer waits on a without holding b: this one goes on (unsorted, it would hold b
        # and PostgreSQL would abort one of the two with a deadlock).
        add_suppressions(conn, [_s(b)])
    thread.join(10)
    assert not other_error
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from campaigns.suppressions where email = any(:e)"),
                            {"e": [a, b]}).scalar_one() == 2
