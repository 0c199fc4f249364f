"""A campaign run's sends split into customer hash partitions, through the fake SendGrid.

Every partition plans, sends and counts only its own contacts under a lock of its own, so partitions
run in parallel, each can be retried or rerun alone, and one that fails stops nothing else; the run's
row in ``campaigns.campaign_runs`` is written once, from the ledger, when all had their turn.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from martech.campaigns import runner
from martech.campaigns.dispatch import DispatchIncompleteError, DispatchInProgressError, make_send_id
from martech.campaigns.freshness import record_suppression_refresh
from martech.campaigns.partitions import partition_of, partition_sql
from martech.campaigns.sendgrid_transport import SendGridTransport
from martech.campaigns.transports import SendResult
from martech.runs import Run
from martech.testing.campaigns import plant_members, write_promo_campaign
from martech.testing.fake_sendgrid import FakeSendGrid
from martech.warehouse import Warehouse

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 5, 4)
NOW = dt.datetime(2026, 5, 4, 9, tzinfo=dt.timezone.utc)
RUN = Run.daily(DAY)
MEMBERS = 60
PARTITIONS = 3


class CrashAfterRequest(SendGridTransport):
    """Hands the ``crash_on``-th request to SendGrid, then fails as a worker dying mid-batch would."""

    def __init__(self, *args, crash_on: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls, self.crash_on = 0, crash_on

    def send_batch(self, messages, attempt_ref=None):
        self.calls += 1
        results = super().send_batch(messages, attempt_ref=attempt_ref)
        if self.calls == self.crash_on:
            raise ConnectionResetError("connection lost after the request")
        return results


@pytest.fixture()
def sg():
    with FakeSendGrid() as fake:
        yield fake


def _transport(sg, cls=SendGridTransport, **kwargs):
    # the fake's clock: waiting moves it on instead of sleeping
    return cls("SG.test", host=sg.url, batch_size=4, timeout=2, max_wait_s=1,
               clock=lambda: dt.datetime.fromtimestamp(sg.now(), tz=dt.timezone.utc), sleep=sg.advance, **kwargs)


@pytest.fixture()
def warehouse(clean_warehouse, tmp_path, monkeypatch):
    folder = tmp_path / "campaigns"
    write_promo_campaign(folder)
    (folder / "_settings.yml").write_text(f"dispatch:\n  partitions: {PARTITIONS}\n")
    monkeypatch.setenv("MARTECH_CAMPAIGNS_DIR", str(folder))
    monkeypatch.setenv("MARTECH_OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.delenv("MARTECH_SEED_ADDRESSES", raising=False)
    plant_members(clean_warehouse, "promo", DAY, [
        (f"c{i:03d}", f"u{i}@example.com", f"N{i}", "holdout" if i % 5 == 0 else "treatment", "ab"[i % 2])
        for i in range(MEMBERS)])
    with clean_warehouse.begin() as conn:
        record_suppression_refresh(conn, DAY, 0, NOW)
    with Warehouse(clean_warehouse.url.render_as_string(hide_password=False)) as wh:
        yield wh


def _treatment() -> set[str]:
    return {make_send_id("promo", DAY.isoformat(), 1, f"c{i:03d}") for i in range(MEMBERS) if i % 5}


def _delivered(sg) -> Counter[str]:
    sg.settle()
    return sg.state.deliveries()


def _run_row(wh) -> list[dict]:
    with wh.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "select treatment, holdout, sent, dispatch_state, in_doubt, retrying from campaigns.campaign_runs"
            " where campaign_id = 'promo'")).mappings()]


def test_the_warehouse_computes_the_same_partition_as_python(engine):
    ids = [f"c{i:03d}" for i in range(300)] + ["", "ü-ñ", "x" * 200]
    with engine.connect() as conn:
        got = dict(conn.execute(sa.text(
            f"select c, {partition_sql('c')} from unnest(cast(:ids as text[])) as u(c)"),
            {"ids": ids, "partitions": 7}).all())
    assert got == {c: partition_of(c, 7) for c in ids}


def test_all_partitions_send_every_treatment_member_exactly_once_and_record_the_run_once(warehouse, sg):
    out = runner.dispatch(warehouse, "promo", RUN, NOW, _transport(sg))
    assert (out["treatment"], out["sent_now"], out["members"]) == (48, 48, 60)
    delivered = _delivered(sg)
    assert set(delivered) == _treatment() and set(delivered.values()) == {1}
    assert _run_row(warehouse) == [{"treatment": 48, "holdout": 12, "sent": 48, "dispatch_state": "complete",
                                    "in_doubt": 0, "retrying": 0}]
    with warehouse.engine.connect() as conn:
        by_part = Counter(partition_of(c, PARTITIONS) for (c,) in conn.execute(sa.text(
            "select contact_id from campaigns.send_ledger where status = 'sent'")))
    assert sorted(by_part) == list(range(PARTITIONS))  # every partition had contacts to send
    again = runner.dispatch(warehouse, "promo", RUN, NOW, _transport(sg))  # a rerun of the whole run
    assert (again["sent_now"], again["already_sent"]) == (0, 48)
    assert _delivered(sg) == delivered


def test_partitions_sent_at_once_and_twice_then_rerun_send_nothing_twice(warehouse, sg):
    assignments = runner.prepare_dispatch(warehouse, "promo", RUN, NOW, _transport(sg))
    assert [a["partition"] for a in assignments] == list(range(PARTITIONS))
    errors: list[BaseException] = []
    results: list[dict] = []
    start = threading.Barrier(2 * PARTITIONS)

    def send(assignment):
        start.wait()
        try:
            results.append(runner.dispatch_partition(warehouse, "promo", RUN, NOW, assignment, _transport(sg)))
        except BaseException as exc:  # collected and checked below
            errors.append(exc)

    # every partition by two workers at once: one of each pair sends, the other finds it locked or done
    threads = [threading.Thread(target=send, args=(a,)) for a in assignments for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(isinstance(e, DispatchInProgressError) for e in errors), errors
    assert sum(r["steps"]["1"]["sent_now"] for r in results) == 48
    summary = runner.finish_dispatch(warehouse, "promo", RUN, NOW, assignments, results, _transport(sg))
    assert (summary["sent_now"], summary["treatment"]) == (48, 48)
    runner.dispatch(warehouse, "promo", RUN, NOW, _transport(sg))
    delivered = _delivered(sg)
    assert set(delivered) == _treatment() and set(delivered.values()) == {1}
    assert _run_row(warehouse)[0]["sent"] == 48


@pytest.mark.parametrize("fault", ["crash_after_request", "refused_503"])
def test_a_failing_partition_stops_no_other_and_its_retry_sends_exactly_once(warehouse, sg, fault):
    assignments = runner.prepare_dispatch(warehouse, "promo", RUN, NOW, _transport(sg))
    failing = assignments[1]
    done = [runner.dispatch_partition(warehouse, "promo", RUN, NOW, a, _transport(sg)) for a in assignments
            if a is not failing]
    if fault == "crash_after_request":  # the second request of the partition reaches SendGrid, no answer
        with pytest.raises(ConnectionResetError):
            runner.dispatch_partition(warehouse, "promo", RUN, NOW, failing,
                                      _transport(sg, CrashAfterRequest, crash_on=2))
    else:  # SendGrid refuses the partition's second request (503, nothing accepted): its rows back off
        transport = _transport(sg)
        original = transport.send_batch
        calls = []

        def flaky(messages, attempt_ref=None):
            calls.append(1)
            if len(calls) == 2:
                return [SendResult(m.send_id, error="HTTP 503 from mail/send") for m in messages]
            return original(messages, attempt_ref=attempt_ref)

        transport.send_batch = flaky  # type: ignore[method-assign]
        with pytest.raises(runner.PartitionIncompleteError, match="partition 2 of 3"):
            runner.dispatch_partition(warehouse, "promo", RUN, NOW, failing, transport)
    # the other partitions are sent in full; the run is recorded incomplete, and fails
    others = {make_send_id("promo", DAY.isoformat(), 1, f"c{i:03d}") for i in range(MEMBERS)
              if i % 5 and partition_of(f"c{i:03d}", PARTITIONS) != 1}
    assert others <= set(_delivered(sg))
    with pytest.raises((DispatchIncompleteError, RuntimeError)):
        runner.finish_dispatch(warehouse, "promo", RUN, NOW, assignments, done, _transport(sg))
    assert _run_row(warehouse)[0]["dispatch_state"] == "incomplete"
    # the partition's retries (once SendGrid's records or the back-off allow) settle it
    for _ in range(10):
        try:
            done.append(runner.dispatch_partition(warehouse, "promo", RUN, NOW, failing, _transport(sg)))
            break
        except runner.PartitionIncompleteError:
            sg.advance(3600)
    summary = runner.finish_dispatch(warehouse, "promo", RUN, NOW, assignments, done, _transport(sg))
    assert summary["treatment"] == 48
    delivered = _delivered(sg)
    assert set(delivered) == _treatment() and set(delivered.values()) == {1}
    assert _run_row(warehouse) == [{"treatment": 48, "holdout": 12, "sent": 48, "dispatch_state": "complete",
                                    "in_doubt": 0, "retrying": 0}]


def test_only_partitions_with_contacts_are_mapped_and_an_empty_run_is_still_recorded(warehouse, sg):
    busy = {partition_of(f"c{i:03d}", PARTITIONS) for i in range(MEMBERS) if i % 5}
    assert [a["partition"] for a in runner.prepare_dispatch(warehouse, "promo", RUN, NOW, _transport(sg))] == \
        sorted(busy)
    empty = Run.daily(DAY + dt.timedelta(days=1))
    with warehouse.engine.begin() as conn:
        record_suppression_refresh(conn, empty.date, 0, NOW + dt.timedelta(days=1))
    later = NOW + dt.timedelta(days=1)
    assert runner.prepare_dispatch(warehouse, "promo", empty, later, _transport(sg)) == []
    summary = runner.finish_dispatch(warehouse, "promo", empty, later, [], [], _transport(sg))
    assert (summary["treatment"], summary["sent_now"]) == (0, 0)
    with warehouse.engine.connect() as conn:
        assert conn.execute(sa.text("select members, dispatch_state from campaigns.campaign_runs"
                                    " where run_id = :r"), {"r": empty.run_id(1)}).one() == (0, "complete")


def test_a_partition_that_failed_before_planning_leaves_the_run_incomplete(warehouse, sg):
    assignments = runner.prepare_dispatch(warehouse, "promo", RUN, NOW, _transport(sg))
    done = [runner.dispatch_partition(warehouse, "promo", RUN, NOW, a, _transport(sg)) for a in assignments[1:]]
    # the first partition's task died before it planned anything: its members have no ledger row
    with pytest.raises(DispatchIncompleteError, match="to retry"):
        runner.finish_dispatch(warehouse, "promo", RUN, NOW, assignments, done, _transport(sg))
    assert _run_row(warehouse)[0]["dispatch_state"] == "incomplete"
    done.append(runner.dispatch_partition(warehouse, "promo", RUN, NOW, assignments[0], _transport(sg)))
    runner.finish_dispatch(warehouse, "promo", RUN, NOW, assignments, done, _transport(sg))
    delivered = _delivered(sg)
    assert set(delivered) == _treatment() and set(delivered.values()) == {1}


def test_the_outbox_index_is_written_once_per_run_after_every_partition(warehouse, tmp_path):
    from martech.campaigns.transports import OutboxTransport

    class CountingOutbox(OutboxTransport):
        def __init__(self, root):
            super().__init__(root)
            self.finalized: list[str] = []

        def finalize_run(self, campaign_id, run_id):
            self.finalized.append(run_id)
            super().finalize_run(campaign_id, run_id)

    outbox = CountingOutbox(tmp_path / "outbox")
    assignments = runner.prepare_dispatch(warehouse, "promo", RUN, NOW, outbox)
    assert len(assignments) == PARTITIONS
    results = [runner.dispatch_partition(warehouse, "promo", RUN, NOW, a, outbox) for a in assignments]
    assert outbox.finalized == []  # no partition rewrites the index of the whole run
    runner.finish_dispatch(warehouse, "promo", RUN, NOW, assignments, results, outbox)
    assert outbox.finalized == [DAY.isoformat()]
    index = (tmp_path / "outbox" / "promo" / DAY.isoformat() / "index.html").read_text()
    assert index.count(".eml</a>") == 48
