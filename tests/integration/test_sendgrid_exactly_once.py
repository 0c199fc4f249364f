"""Exactly-once through SendGrid as it really behaves, proven by killing the sender.

A dispatch process is forked and SIGKILLed — at a named point of the protocol or after a random delay —
while the fake SendGrid (its own process, its own clock) plays one named scenario: a late dispatch of a
send-window campaign (quiet-hours send times already past), refused cancels (the rerun comes inside the
10-minute cut-off), the 10-batch cancel limit already used up by others, bursts of 5xx lasting seconds
(accepting or not), accepted-then-dropped connections, accepted-then-500, timeouts, 429. Then it reruns;
a run that ends incomplete (rows in doubt, waiting for SendGrid's records or a back-off) exits with its
own code, the fake's clock moves on by the time the run asked for, and it reruns again. After every
round, once every scheduled send time has passed: each treatment member delivered exactly once, nobody
else, every ledger row ``sent``. Two campaigns alternate, one with a send window.

``MARTECH_EO_KILLS`` sets how many SIGKILLs must land (default 24; ``MARTECH_EO_KILLS=100`` for the figure
in docs/exactly-once.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.campaigns.dispatch import DispatchIncompleteError, DispatchInProgressError, dispatch, make_send_id
from martech.campaigns.faults import ENV as KILL_ENV
from martech.campaigns.faults import POINTS
from martech.campaigns.sendgrid_transport import SendGridTransport
from martech.campaigns.spec import CampaignSpec, load_campaign
from martech.db import make_engine, run_model

pytestmark = pytest.mark.integration

NOW = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)
KILLS = int(os.environ.get("MARTECH_EO_KILLS", "24"))  # SIGKILLs that must land mid-dispatch
MEMBERS = 18
SCENARIOS = ("plain", "late_window", "refused_cancel", "cancel_limit", "burst_500", "burst_accept", "accept_drop",
             "accept_500", "accept_slow", "500", "429")
INCOMPLETE = 4  # the dispatcher's exit code when the run ended with rows in doubt or to retry


class FakeServer:
    """Client side of the fake SendGrid process."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_fake/state", timeout=10) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self._post("/_fake/reset", {})

    def fault(self, *faults: str, slow_s: float = 1.0, **options: Any) -> None:
        self._post("/_fake/faults", {"faults": list(faults), "slow_s": slow_s, **options})

    def advance(self, seconds: float) -> float:
        return float(self._post("/_fake/advance", {"seconds": seconds})["now"])

    def now(self) -> float:
        return self.advance(0)

    def api(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": "Bearer SG.x"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def use_up_cancels(self) -> None:
        """Someone else's ten cancelled batches, scheduled two hours ahead: the account's limit is reached."""
        for i in range(10):
            batch_id = self.api("/v3/mail/batch", {})["batch_id"]
            self.api("/v3/mail/send", {
                "personalizations": [{"to": [{"email": f"other{i}@example.com"}]}],
                "from": {"email": "other@example.com"}, "subject": "x", "content": [{"type": "text/plain",
                                                                                   "value": "x"}],
                "batch_id": batch_id, "send_at": int(self.now()) + 7200})
            self.api("/v3/user/scheduled_sends", {"batch_id": batch_id, "status": "cancel"})


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeServer]:
    port_file = tmp_path_factory.mktemp("fake_sendgrid") / "port"
    proc = subprocess.Popen([sys.executable, "-m", "martech.testing.fake_sendgrid", "--port-file", str(port_file)])
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the fake SendGrid server did not start")
            time.sleep(0.05)
        yield FakeServer(f"http://127.0.0.1:{port_file.read_text()}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def wh(module_warehouse) -> tuple[Engine, str]:
    return module_warehouse.engine, module_warehouse.url


def _spec(folder: Any, cid: str, window: str = "") -> CampaignSpec:
    (folder / "audiences").mkdir(exist_ok=True)
    (folder / "audiences" / f"{cid}.sql").write_text("select contact_id, email, first_name from staging.contacts\n")
    (folder / f"{cid}.yml").write_text(
        f"id: {cid}\nname: {cid}\nowner: test\ndescription: test\nschedule: '0 8 * * *'\n"
        f"audience_sql: audiences/{cid}.sql\ntemplate: birthday\nholdout_share: 0.2\n{window}"
        "variants:\n  - {id: a, weight: 1, subject: 'Hi {{ first_name }}'}\n"
        "  - {id: b, weight: 1, subject: 'Hello {{ first_name }}'}\n")
    return load_campaign(folder / f"{cid}.yml")


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CampaignSpec]:
    folder = tmp_path_factory.mktemp("campaigns")
    return {"promo": _spec(folder, "promo"),
            "vip": _spec(folder, "vip", "send_window: {start: '09:00', end: '20:00'}\n")}


def _plant_audience(engine: Engine, spec: CampaignSpec, run: date, n: int, fake_now: float | None = None
                    ) -> list[str]:
    """n members for the run (every fifth in holdout); returns the treatment send ids.

    With ``fake_now`` (a send-window campaign dispatched late): a third of the members' window opened
    hours ago and is still open (their send_at is past), a third closed an hour ago (next day's window),
    a third opens in three hours.
    """
    rows = []
    for i in range(n):
        row: dict[str, Any] = {"c": f"c{i:03d}", "e": f"c{i:03d}@example.com", "f": f"Name{i}",
                               "arm": "holdout" if i % 5 == 0 else "treatment", "v": "ab"[i % 2],
                               "sa": None, "sb": None}
        if fake_now is not None:
            at = datetime.fromtimestamp(fake_now, tz=timezone.utc)
            start, end = [(at - timedelta(hours=5), at + timedelta(hours=4)),
                          (at - timedelta(hours=12), at - timedelta(hours=1)),
                          (at + timedelta(hours=3), at + timedelta(hours=14))][i % 3]
            row.update(sa=start, sb=end)
        rows.append(row)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, first_name,"
            " arm, variant, definition_hash, attributes, send_at, send_before)"
            " values (:cid, :r, :d, :c, :e, :f, :arm, :v, 'h', '{\"is_customer\": true}', :sa, :sb)"),
            [{**row, "cid": spec.id, "r": run.isoformat(), "d": run} for row in rows])
    return sorted(make_send_id(spec.id, run.isoformat(), 1, r["c"]) for r in rows if r["arm"] == "treatment")


def _fake_time(fake: Any) -> tuple[Callable[[], datetime], Callable[[float], None]]:
    """A clock and a sleep on the fake's time: waiting moves the fake's clock on instead of sleeping."""
    offset = fake.now() - time.time()

    def clock() -> datetime:
        return datetime.fromtimestamp(time.time() + offset, tz=timezone.utc)

    def sleep(seconds: float) -> None:
        nonlocal offset
        fake.advance(seconds)
        offset += seconds

    return clock, sleep


def _child(db_url: str, spec: CampaignSpec, run: date, server: FakeServer) -> None:
    code = 1
    try:
        clock, sleep = _fake_time(server)
        engine = make_engine(db_url)
        transport = SendGridTransport("SG.test", host=server.url, batch_size=7, timeout=0.5, max_wait_s=1.5,
                                      clock=clock, sleep=sleep)
        dispatch(engine, spec, run, transport, now=NOW)
        code = 0
    except DispatchInProgressError:
        code = 3
    except DispatchIncompleteError:
        code = INCOMPLETE
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _run(db_url: str, spec: CampaignSpec, run: date, server: FakeServer, *, kill_at: str | None = None,
         kill_after_s: float | None = None) -> int:
    """Fork a dispatcher; returns its exit code, or -9 when it was SIGKILLed."""
    if kill_at:
        os.environ[KILL_ENV] = kill_at
    try:
        pid = os.fork()
        if pid == 0:
            _child(db_url, spec, run, server)
    finally:
        os.environ.pop(KILL_ENV, None)
    if kill_after_s is not None:
        time.sleep(kill_after_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _run_to_completion(engine: Engine, db_url: str, spec: CampaignSpec, run: date, server: FakeServer
                       ) -> Counter[int]:
    """Rerun until the run completes; an incomplete run is rerun once the fake's clock reaches its next try."""
    codes = Counter[int]()
    for _ in range(40):
        code = _run(db_url, spec, run, server)
        codes[code] += 1
        if code == 0:
            return codes
        assert code in (3, INCOMPLETE), f"dispatcher failed with exit code {code}"
        if code == INCOMPLETE:
            with engine.connect() as conn:
                row = conn.execute(sa.text(
                    "select dispatch_state, in_doubt, retrying, next_attempt_at from campaigns.campaign_runs"
                    " where campaign_id = :c and run_id = :r"), {"c": spec.id, "r": run.isoformat()}).one()
            assert row.dispatch_state == "incomplete" and (row.in_doubt or row.retrying), row
            wait = (row.next_attempt_at.timestamp() - server.now()) if row.next_attempt_at else 0
            server.advance(max(wait, 0) + 1)
        else:
            time.sleep(0.1)  # the killed process's advisory lock is released when PostgreSQL sees it gone
    raise AssertionError("the run never completed")


def _stage(server: FakeServer, scenario: str, rng: random.Random) -> None:
    """Set the fake up for the scenario, before the first (killed) dispatch."""
    if scenario == "cancel_limit":
        server.use_up_cancels()
    if scenario in ("cancel_limit", "refused_cancel", "accept_drop"):
        server.fault("accept_drop")
    elif scenario == "burst_500":
        server.fault(burst_s=rng.uniform(1, 4), burst_status=rng.choice([500, 503]), retry_after=1)
    elif scenario == "burst_accept":
        server.fault(burst_s=rng.uniform(1, 4), burst_status=500, burst_accept=True)
    elif scenario in ("accept_500", "accept_slow", "500", "429"):
        server.fault(scenario, slow_s=1.0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_anywhere_with_sendgrids_rules_then_rerun_sends_everyone_exactly_once(wh, specs, fake) -> None:
    engine, db_url = wh
    rng = random.Random(20240601)
    killed = Counter[str]()
    outcomes: dict[str, Counter[str]] = {name: Counter() for name in SCENARIOS}
    # A clean run first: how long a whole dispatch takes here, to aim the random-time kills.
    fake.reset()
    clean = _plant_audience(engine, specs["promo"], date(2024, 5, 31), MEMBERS)
    started = time.perf_counter()
    assert _run_to_completion(engine, db_url, specs["promo"], date(2024, 5, 31), fake) == Counter({0: 1})
    span = time.perf_counter() - started
    fake.advance(25 * 60)
    assert sorted(fake.state()["deliveries"]) == clean
    i = 0
    while (sum(killed.values()) < KILLS or not all(outcomes[s] for s in SCENARIOS)
           or not all(killed[p] for p in POINTS)):
        assert i < 6 * KILLS + 60, f"only {sum(killed.values())} kills landed in {i} rounds: {dict(killed)}"
        run = date(2024, 6, 1) + timedelta(days=i)
        scenario = SCENARIOS[i % len(SCENARIOS)]
        spec = specs["vip" if scenario == "late_window" or i % 3 == 0 else "promo"]
        i += 1
        fake.reset()
        expected = _plant_audience(engine, spec, run, MEMBERS, fake.now() if spec.id == "vip" else None)
        _stage(fake, scenario, rng)
        if i % 2 == 0:
            point = POINTS[(i // 2) % len(POINTS)]  # with the scenarios' cycle: every point with each
            if point == "after_cancel" and scenario in ("plain", "late_window"):
                fake.fault("accept_500")  # a cancel happens only for an attempt left in doubt
            nth = 1 if point in ("after_cancel", "after_plan") else rng.randint(1, 3)
            code = _run(db_url, spec, run, fake, kill_at=f"{point}#{nth}")
            kind = point
        else:
            code = _run(db_url, spec, run, fake, kill_after_s=rng.uniform(0.0, span))
            kind = "random_time"
        if code == -signal.SIGKILL:
            killed[kind] += 1
        if scenario == "refused_cancel":
            fake.advance(11 * 60)  # the rerun comes inside the cut-off: no cancel is possible any more
        codes = _run_to_completion(engine, db_url, spec, run, fake)
        fake.advance(3 * 86400)  # past every send time (the next day's window included)

        state = fake.state()
        assert not state["rejected"], state["rejected"]  # every request matched SendGrid's schema
        deliveries = Counter(state["deliveries"])
        duplicates = {k: v for k, v in deliveries.items() if v > 1}
        assert not duplicates, f"round {i} ({scenario}, {kind}): delivered twice: {duplicates}"
        if sorted(deliveries) != expected:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("select send_id, status, attempts, attempt_ref, error"
                                            " from campaigns.send_ledger where campaign_id = :c and run_id = :r"),
                                    {"c": spec.id, "r": run.isoformat()}).all()
            raise AssertionError(f"round {i} ({scenario}, {kind}, exit {code}): missing or extra recipients;"
                                 f" ledger {rows}; server {state}")
        with engine.connect() as conn:
            statuses = Counter(s for (s,) in conn.execute(sa.text(
                "select status from campaigns.send_ledger where campaign_id = :c and run_id = :r"),
                {"c": spec.id, "r": run.isoformat()}))
        assert statuses == Counter({"sent": len(expected)})
        outcomes[scenario]["rounds"] += 1
        outcomes[scenario]["killed"] += code == -signal.SIGKILL
        outcomes[scenario]["reruns_incomplete"] += codes[INCOMPLETE]
        outcomes[scenario]["refused_cancels"] += len(state["refused_cancels"])

    # The kills landed at every protocol point, not only at random times.
    assert all(killed[p] for p in POINTS), killed
    print(f"\n{i} rounds, SIGKILLs: {sum(killed.values())} {dict(killed)}")
    for name, c in outcomes.items():
        print(f"  {name}: {dict(c)}; 0 duplicates, 0 missing")


def test_without_email_activity_a_refused_cancel_stays_in_doubt_until_the_webhook_tells(wh, specs, fake) -> None:
    """SendGrid leaves no way to know: the rows are reported in doubt run after run, never mailed twice."""
    engine, _ = wh
    spec, run = specs["promo"], date(2023, 1, 2)
    fake.reset()
    expected = _plant_audience(engine, spec, run, MEMBERS)
    fake.use_up_cancels()
    fake.fault("accept_drop", activity=False)
    clock, sleep = _fake_time(fake)
    transport = SendGridTransport("SG.test", host=fake.url, batch_size=7, timeout=0.5, clock=clock, sleep=sleep)
    with pytest.raises(DispatchIncompleteError) as first:
        dispatch(engine, spec, run, transport, now=NOW)
    assert first.value.summary.uncertain == 7 and first.value.summary.sent_now == len(expected) - 7
    sleep(3600)  # long past the send time: Email Activity answers 403, a cancel is too late
    with pytest.raises(DispatchIncompleteError) as second:
        dispatch(engine, spec, run, transport, now=NOW)
    assert second.value.summary.uncertain == 7 and second.value.summary.sent_now == 0 and transport.activity is False
    with engine.connect() as conn:
        state = conn.execute(sa.text("select dispatch_state, in_doubt from campaigns.campaign_runs"
                                     " where campaign_id = 'promo' and run_id = :r"), {"r": run.isoformat()}).one()
    assert tuple(state) == ("incomplete", 7)
    delivered = Counter(fake.state()["deliveries"])
    assert sorted(delivered) == expected and set(delivered.values()) == {1}  # the dropped batch went out once

    # The Event Webhook's callbacks (some twice, out of order) land in staging.email_events: settled.
    with urllib.request.urlopen(fake.url + "/_fake/events?seed=7", timeout=10) as resp:
        events = json.loads(resp.read())
    assert len(events) > len({e["sg_event_id"] for e in events})  # repeated callbacks
    run_model(engine, "staging.email_events", {"run_date": run, "run_ts": NOW})  # the model's table, empty
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into staging.email_events (event_id, event, event_ts, email, message_id, send_id, campaign_id,"
            " run_id, contact_id) values (:sg_event_id, :event, to_timestamp(:timestamp), :email, :sg_message_id,"
            " :send_id, :campaign_id, :run_id, :contact_id) on conflict do nothing"), events)
    done = dispatch(engine, spec, run, transport, now=NOW)
    assert (done.uncertain, done.sent_now, done.retrying) == (0, 0, 0)
    with engine.connect() as conn:
        statuses = Counter(s for (s,) in conn.execute(sa.text(
            "select status from campaigns.send_ledger where campaign_id = 'promo' and run_id = :r"),
            {"r": run.isoformat()}))
    assert statuses == Counter({"sent": len(expected)})
    assert Counter(fake.state()["deliveries"]) == delivered
