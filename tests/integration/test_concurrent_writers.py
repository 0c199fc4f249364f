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


class _OtherWriter:
    """``write(conn)`` in a transaction of its own on another thread, started once this one holds its first
    lock: ``start`` returns when that writer waits for a lock (``waiting_for`` names it in the failure)."""

    def __init__(self, engine, write, waiting_for: str) -> None:
        self.engine, self.write, self.waiting_for = engine, write, waiting_for
        self.pid: list[int] = []
        self.errors: list[BaseException] = []
        self.results: list = []
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            with self.engine.begin() as conn:
                self.pid.append(conn.execute(sa.text("select pg_backend_pid()")).scalar_one())
                self.results.append(self.write(conn))
        except BaseException as exc:
            self.errors.append(exc)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not (self.pid and _waiting_for_lock(self.engine, self.pid[0])):
            assert time.monotonic() < deadline, f"the other writer never waited for {self.waiting_for}"
            time.sleep(0.05)

    def join(self) -> None:
        self.thread.join(10)


def test_overlapping_suppressions_in_opposite_orders_do_not_deadlock(engine):
    a, b = "order-a@example.com", "order-b@example.com"
    with engine.begin() as conn:
        conn.execute(sa.text("delete from campaigns.suppressions where email = any(:e)"), {"e": [a, b]})
    # The other writer names the addresses the other way round.
    other = _OtherWriter(engine, lambda conn: add_suppressions(conn, [_s(b), _s(a)]), "the shared address")

    with engine.begin() as conn:
        add_suppressions(conn, [_s(a)])
        other.start()
        # The other writer waits on a without holding b: this one goes on (unsorted, it would hold b
        # and PostgreSQL would abort one of the two with a deadlock).
        add_suppressions(conn, [_s(b)])
    other.join()
    assert not other.errors
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from campaigns.suppressions where email = any(:e)"),
                            {"e": [a, b]}).scalar_one() == 2


def _lock_order(engine, names: list[str]) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("select x from unnest(cast(:n as text[])) as x order by"
                                         " hashtextextended(x, 0)"), {"n": names}).scalars())


def _event(sg_event_id: str, email: str, ts: int) -> dict:
    return {"event": "delivered", "email": email, "timestamp": ts, "sg_event_id": sg_event_id,
            "sg_message_id": f"msg-{sg_event_id}"}


def test_webhook_batches_sharing_events_in_opposite_orders_do_not_deadlock(engine):
    """Two batches share two events, each event reported again under its sg_event_id with another
    timestamp (so another composite key): the conflict is on the second unique index only."""
    from martech.events.store import lock_keys, normalise, store_events

    # Two sg_event_ids whose lock names sort first-then-second, so this writer's two calls follow the one order.
    first, second = "conc-sg-1", "conc-sg-2"
    names = [f"raw.webhook_events.sg_event_id:{s}" for s in (first, second)]
    if _lock_order(engine, names) != names:
        first, second = second, first
    a, b = _event(first, "conc-a@example.com", 1_780_000_000), _event(second, "conc-b@example.com", 1_780_000_001)
    a2, b2 = {**a, "timestamp": a["timestamp"] + 60}, {**b, "timestamp": b["timestamp"] + 60}
    assert lock_keys([normalise(a, received_at=AT)]) != lock_keys([normalise(a2, received_at=AT)])
    with engine.begin() as conn:
        conn.execute(sa.text("delete from raw.webhook_events where sg_event_id = any(:s)"), {"s": [first, second]})
    # The other batch: the same two events, the other way round.
    other = _OtherWriter(engine, lambda conn: store_events(conn, [b2, a2], received_at=AT).stored, "the shared event")

    with engine.begin() as conn:
        assert store_events(conn, [a], received_at=AT).stored == 1
        other.start()
        # Unordered, the other batch would hold b's sg_event_id while waiting for a's, and this insert of b
        # would close the cycle (PostgreSQL aborts one of them with a deadlock).
        assert store_events(conn, [b], received_at=AT).stored == 1
    other.join()
    assert not other.errors
    assert other.results == [0]  # both were already stored, on their sg_event_id
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from raw.webhook_events where sg_event_id = any(:s)"),
                            {"s": [first, second]}).scalar_one() == 2
