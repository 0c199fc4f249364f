"""Exactly-once through SendGrid, proven by killing the sender.

A dispatch process is forked and SIGKILLed — at a named point of the protocol or after a random delay,
with and without server faults (accepted-then-500, accepted-then-timeout, 500, 429) — and then rerun until
it completes. The fake SendGrid server runs in a process of its own and counts deliveries (accepted and
not cancelled before send time). After every round: each treatment member delivered exactly once,
nobody else delivered, every ledger row ``sent``.
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
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from martech.campaigns.dispatch import DispatchInProgressError, dispatch, make_send_id
from martech.campaigns.faults import ENV as KILL_ENV
from martech.campaigns.faults import POINTS
from martech.campaigns.sendgrid_transport import SendGridTransport
from martech.campaigns.spec import CampaignSpec, load_campaign
from martech.db import make_engine
from martech.testing.campaigns import write_promo_campaign

pytestmark = pytest.mark.integration

NOW = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)
KILLS = 55  # SIGKILLs that must land mid-dispatch
MAX_ROUNDS = 150
MEMBERS = 18


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

    def fault(self, *faults: str, slow_s: float = 1.0) -> None:
        self._post("/_fake/faults", {"faults": list(faults), "slow_s": slow_s})


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


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> CampaignSpec:
    return load_campaign(write_promo_campaign(tmp_path_factory.mktemp("campaigns")))


def _plant_audience(engine: Engine, run: date, n: int) -> list[str]:
    """n members for the run (every fifth in holdout); returns the treatment send ids."""
    rows = [{"c": f"c{i:03d}", "e": f"c{i:03d}@example.com", "f": f"Name{i}",
             "arm": "holdout" if i % 5 == 0 else "treatment", "v": "ab"[i % 2]} for i in range(n)]
    with engine.begin() as conn:
        conn.execute(sa.text(
            "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email, first_name,"
            " arm, variant, definition_hash, attributes)"
            " values ('promo', :r, :d, :c, :e, :f, :arm, :v, 'h', '{\"is_customer\": true}')"),
            [{**row, "r": run.isoformat(), "d": run} for row in rows])
    return sorted(make_send_id("promo", run.isoformat(), 1, r["c"]) for r in rows if r["arm"] == "treatment")


def _child(db_url: str, spec: CampaignSpec, run: date, server_url: str) -> None:
    code = 1
    try:
        engine = make_engine(db_url)
        transport = SendGridTransport("SG.test", host=server_url, batch_size=7, timeout=0.5, max_wait_s=1.5)
        dispatch(engine, spec, run, transport, now=NOW)
        code = 0
    except DispatchInProgressError:
        code = 3
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def _run(db_url: str, spec: CampaignSpec, run: date, server_url: str, *, kill_at: str | None = None,
         kill_after_s: float | None = None) -> int:
    """Fork a dispatcher; returns its exit code, or -9 when it was SIGKILLed."""
    if kill_at:
        os.environ[KILL_ENV] = kill_at
    try:
        pid = os.fork()
        if pid == 0:
            _child(db_url, spec, run, server_url)
    finally:
        os.environ.pop(KILL_ENV, None)
    if kill_after_s is not None:
        time.sleep(kill_after_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _run_to_completion(db_url: str, spec: CampaignSpec, run: date, server_url: str) -> int:
    for attempt in range(40):
        code = _run(db_url, spec, run, server_url)
        if code == 0:
            return attempt + 1
        assert code == 3, f"dispatcher failed with exit code {code}"
        time.sleep(0.1)  # the killed process's advisory lock is released when PostgreSQL sees it gone
    raise AssertionError("the dispatcher never got the run's lock")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_sigkill_anywhere_then_rerun_sends_everyone_exactly_once(wh, spec, fake) -> None:
    engine, db_url = wh
    rng = random.Random(20240601)
    killed = Counter[str]()
    server_faults = Counter[str]()
    # A clean run first: how long a whole dispatch takes here, to aim the random-time kills.
    fake.reset()
    clean = _plant_audience(engine, date(2024, 5, 31), MEMBERS)
    started = time.perf_counter()
    assert _run_to_completion(db_url, spec, date(2024, 5, 31), fake.url) == 1
    span = time.perf_counter() - started
    assert sorted(fake.state()["deliveries"]) == clean
    i = 0
    while sum(killed.values()) < KILLS:
        assert i < MAX_ROUNDS, f"only {sum(killed.values())} kills landed in {i} rounds: {dict(killed)}"
        run = date(2024, 6, 1) + timedelta(days=i)
        i += 1
        fake.reset()
        expected = _plant_audience(engine, run, MEMBERS)
        if rng.random() < 0.4:
            fault = rng.choice(["accept_500", "accept_slow", "500", "429"])
            fake.fault(fault, slow_s=1.0)
            server_faults[fault] += 1
        if i % 2 == 0:
            point = rng.choice(POINTS)
            if point == "after_cancel":
                fake.fault("accept_500")  # a cancel happens only for an attempt left in doubt
            nth = 1 if point == "after_cancel" else rng.randint(1, 3)
            code = _run(db_url, spec, run, fake.url, kill_at=f"{point}#{nth}")
            kind = point
        else:
            code = _run(db_url, spec, run, fake.url, kill_after_s=rng.uniform(0.0, span))
            kind = "random_time"
        if code == -signal.SIGKILL:
            killed[kind] += 1
        _run_to_completion(db_url, spec, run, fake.url)

        state = fake.state()
        assert not state["rejected"], state["rejected"]  # every request matched SendGrid's schema
        deliveries = Counter(state["deliveries"])
        duplicates = {k: v for k, v in deliveries.items() if v > 1}
        assert not duplicates, f"round {i} ({kind}): delivered twice: {duplicates}"
        if sorted(deliveries) != expected:
            with engine.connect() as conn:
                rows = conn.execute(sa.text("select send_id, status, attempts, attempt_ref, error"
                                            " from campaigns.send_ledger where run_id = :r"),
                                    {"r": run.isoformat()}).all()
            raise AssertionError(f"round {i} ({kind}, exit {code}): missing or extra recipients;"
                                 f" ledger {rows}; server {state}")
        with engine.connect() as conn:
            statuses = Counter(s for (s,) in conn.execute(sa.text(
                "select status from campaigns.send_ledger where run_id = :r"), {"r": run.isoformat()}))
        assert statuses == Counter({"sent": len(expected)})

    # The kills landed at most protocol points, not only at random times.
    assert all(killed[p] for p in POINTS), killed
    print(f"\n{i} rounds, SIGKILLs: {dict(killed)}; server faults: {dict(server_faults)}")
