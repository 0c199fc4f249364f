"""A local stand-in for SendGrid's v3 API, for contract tests and benchmarks (loopback only).

It validates every ``POST /v3/mail/send`` body against the request schema of SendGrid's published
OpenAPI document (``tsg_mail_v3.json``) and answers as SendGrid does: 202 with ``X-Message-Id``, 400 with
an ``errors`` body, 401 without a bearer token, 429 with ``X-RateLimit-*`` headers, 5xx. It also serves
batch ids (``POST /v3/mail/batch``), scheduled-send cancellation (``/v3/user/scheduled_sends``), an Email
Activity lookup (``GET /v3/messages``, optional like the paid add-on) and the Event Webhook's callbacks.

What a test counts is what the server *delivered*: a message goes out at its send time — the
personalization's ``send_at``, else the request's, else at once — unless its batch was cancelled by then
(``State.delivered``, one entry per delivery, so duplicates and missing recipients are visible). Time is the
fake's own clock: wall time plus an offset that ``/_fake/advance`` (or :meth:`FakeSendGrid.advance`) moves
forward, so tests cross a 20-minute hold without sleeping.

The rules it models, with the documentation they come from:

* Scheduling — https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send (and the vendored
  ``tsg_mail_v3.json``): the request's ``send_at`` "may be overridden by the ``send_at`` property set at the
  personalizations level"; a send time may be at most 72 hours ahead; a time already past sends at once.
* Cancelling — https://www.twilio.com/docs/sendgrid/api-reference/cancel-scheduled-sends: no pause or cancel
  later than 10 minutes before the scheduled ``send_at`` (here: before the *earliest* send time of any
  message in the batch), no more than 10 batches paused or cancelled at one time, a cancelled batch's
  messages are discarded when they reach their send time. A cancelled batch stops counting towards the 10
  once the last send time of its messages has passed (an empty one 72 hours after the cancel, the furthest
  a message could still be scheduled into it); a paused one 72 hours after its send time (expired).
* Email Activity — https://www.twilio.com/docs/sendgrid/api-reference/email-activity/filter-all-messages and
  https://www.twilio.com/docs/sendgrid/for-developers/sending-email/getting-started-email-activity-api:
  ``GET /v3/messages?query=...&limit=...`` (``unique_args['<key>']="<value>"``), only with the add-on
  (403 otherwise); a message shows up once processed, after ``activity_lag_s``.
* Event Webhook — https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event: ``processed``
  and ``delivered`` events carrying the message's custom args at the top level; SendGrid delivers events at
  least once and not in order, so ``/_fake/events`` repeats some and shuffles them.
* Rate limits — https://www.twilio.com/docs/sendgrid/api-reference/how-to-use-the-sendgrid-v3-api/rate-limits:
  429 with ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` (a Unix time).

Faults are queued through ``/_fake/faults`` (one per ``mail/send``):

  ``429``          rate limited, not accepted          ``500``    server error, not accepted
  ``400``          rejected                            ``accept_500``   accepted, then answers 500
  ``accept_slow``  accepted, answers after ``slow_s`` (longer than the client's timeout)
  ``accept_drop``  accepted, then the connection is closed without an answer

or as a *burst*: ``{"burst_s": 3, "burst_status": 503, "retry_after": 2, "burst_accept": false}`` answers
every API request with that status for the next ``burst_s`` seconds of the fake's clock (``burst_accept``:
mail sends are accepted first, as a failing front end after the queue would).

Run it in a thread (:class:`FakeSendGrid`) or as its own process
(``python -m martech.testing.fake_sendgrid --port-file PATH``), which fault-injection tests need so that
killing the sender never kills the server.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from martech.testing._loopback import LoopbackFake, QuietServer

# SendGrid's published OpenAPI documents (MIT, see LICENSE there), vendored for the contract tests.
CONTRACTS = Path(__file__).resolve().parents[3] / "tests" / "contracts" / "sendgrid"
_ENV_CONTRACTS = "MARTECH_SENDGRID_CONTRACTS"
CANCEL_CUTOFF_S = 600  # no cancel later than 10 minutes before send_at
CANCEL_LIMIT = 10  # batches paused or cancelled at one time
MAX_AHEAD_S = 72 * 3600  # send_at at most 72 hours ahead; paused batches expire 72 hours after it


def contracts_dir() -> Path:
    import os

    return Path(os.environ.get(_ENV_CONTRACTS, CONTRACTS))


def mail_send_validator(spec_path: Path | None = None) -> Any:
    """A jsonschema validator for the mail-send request body, with the spec's components resolvable."""
    import jsonschema

    doc = json.loads((spec_path or contracts_dir() / "tsg_mail_v3.json").read_text())
    body = doc["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]["schema"]
    root = {**body, "components": doc["components"]}
    cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft202012Validator)
    return cls(root, format_checker=jsonschema.FormatChecker())


class State:
    def __init__(self, validator: Any) -> None:
        self.lock = threading.Lock()
        self.validator = validator
        self.offset = 0.0  # the fake's clock: time.time() + offset
        self.faults: list[str] = []
        self.slow_s = 2.0
        self.burst: dict[str, Any] = {}  # until, status, retry_after, accept
        self.activity = True  # the Email Activity add-on
        self.activity_lag_s = 60.0
        self.event_repeat = 0.3  # share of webhook events sent twice
        self.accepted: list[dict[str, Any]] = []  # {batch_id, send_at, message_id, recipients: [(email, send_id)]}
        self.batches: dict[str, dict[str, Any]] = {}  # batch id -> {status, changed_at, times: [send times]}
        self.scheduled: list[dict[str, Any]] = []  # one per recipient, until its send time
        self.delivered: list[dict[str, Any]] = []  # one per delivery: email, send_id, at, batch_id, ...
        self.discarded: list[dict[str, Any]] = []  # reached their send time in a cancelled batch
        self.events: list[dict[str, Any]] = []
        self.requests: Counter[str] = Counter()
        self.rejected: list[dict[str, Any]] = []
        self.refused_cancels: list[dict[str, Any]] = []
        # SendGrid's suppression lists: list name -> rows ({"created", "email", ...}); "asm_<id>" -> emails
        self.suppression_lists: dict[str, list[Any]] = {}

    def now(self) -> float:
        return time.time() + self.offset

    def tick(self) -> None:
        """Send (or discard) every scheduled message whose time has come. Call with the lock held."""
        now = self.now()
        due = [m for m in self.scheduled if m["send_at"] <= now]
        if not due:
            return
        self.scheduled = [m for m in self.scheduled if m["send_at"] > now]
        for m in sorted(due, key=lambda m: m["send_at"]):
            status = self.batches.get(m["batch_id"], {}).get("status") if m["batch_id"] else None
            if status == "cancel":
                self.discarded.append(m)
            elif status == "pause":
                if m["send_at"] + MAX_AHEAD_S > now:
                    self.scheduled.append(m)  # held until resumed, expires 72 hours after send_at
            else:
                self.delivered.append({**m, "at": m["send_at"]})
                for event, delay in (("processed", 0.0), ("delivered", 2.0)):
                    self.events.append({"email": m["email"], "timestamp": int(m["send_at"] + delay),
                                        "event": event, "sg_event_id": uuid.uuid4().hex,
                                        "sg_message_id": f"{m['message_id']}.{len(self.events)}",
                                        **m["custom_args"]})

    def live_holds(self) -> list[str]:
        """Batches that count towards the limit of 10 paused or cancelled ones right now."""
        now = self.now()
        out = []
        for batch_id, b in self.batches.items():
            if b["status"] == "cancel":
                until = max(b["times"]) if b["times"] else b["changed_at"] + MAX_AHEAD_S
            elif b["status"] == "pause":
                until = (max(b["times"]) if b["times"] else b["changed_at"]) + MAX_AHEAD_S
            else:
                continue
            if now < until:
                out.append(batch_id)
        return out

    def deliveries(self) -> Counter[str]:
        """send_id (or address when there is none) -> times delivered so far."""
        self.tick()
        return Counter(m["send_id"] or m["email"] for m in self.delivered)

    def settle(self) -> None:
        """Move the clock past every scheduled send time and deliver."""
        if self.scheduled:
            self.offset += max(0.0, max(m["send_at"] for m in self.scheduled) - self.now()) + 1
        self.tick()

    def webhook_events(self, seed: int = 0) -> list[dict[str, Any]]:
        """What the Event Webhook would have posted by now: some events twice, in no particular order."""
        self.tick()
        rng = random.Random(seed)
        out = [e for e in self.events for _ in range(2 if rng.random() < self.event_repeat else 1)]
        rng.shuffle(out)
        return out

    def snapshot(self) -> dict[str, Any]:
        self.tick()
        return {"accepted": self.accepted, "batches": self.batches, "requests": dict(self.requests),
                "rejected": self.rejected, "deliveries": dict(self.deliveries()), "faults": self.faults,
                "scheduled": len(self.scheduled), "discarded": len(self.discarded), "now": self.now(),
                "offset": self.offset, "live_holds": self.live_holds(), "refused_cancels": self.refused_cancels}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return None

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _authorized(self) -> bool:
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            self._send(401, {"errors": [{"field": None, "message": "authorization required"}]})
            return False
        return True

    def _in_burst(self, accept: bool | None = None) -> bool:
        """Answer with the burst's status while one lasts (``accept``: only for bursts that accept)."""
        st = self.server.state
        with st.lock:
            burst = dict(st.burst)
            live = bool(burst) and st.now() < burst["until"]
        if not live or (accept is not None and bool(burst.get("accept")) != accept):
            return False
        headers = {"Retry-After": str(burst["retry_after"])} if burst.get("retry_after") else {}
        self._send(int(burst.get("status", 500)), {"errors": [{"message": "service unavailable"}]}, headers)
        return True

    def do_GET(self) -> None:
        st = self.server.state
        url = urlsplit(self.path)
        if url.path == "/_fake/state":
            with st.lock:
                return self._send(200, st.snapshot())
        if url.path == "/_fake/events":
            with st.lock:
                return self._send(200, st.webhook_events(int(parse_qs(url.query).get("seed", ["0"])[0])))
        if not self._authorized() or self._in_burst():
            return None
        if url.path.startswith("/v3/suppression/") or url.path.startswith("/v3/asm/groups/"):
            return self._suppressions()
        if url.path == "/v3/messages":
            return self._activity(parse_qs(url.query))
        if url.path == "/v3/user/scheduled_sends":
            with st.lock:
                st.requests["GET scheduled_sends"] += 1
                st.tick()
                return self._send(200, [{"batch_id": b, "status": st.batches[b]["status"]}
                                        for b in st.live_holds()])
        if url.path.startswith("/v3/user/scheduled_sends/"):
            batch_id = url.path.rsplit("/", 1)[1]
            with st.lock:
                st.requests["GET scheduled_sends"] += 1
                status = st.batches.get(batch_id, {}).get("status")
            return self._send(200, [{"batch_id": batch_id, "status": status}] if status else [])
        return self._send(404, {"errors": [{"message": f"no route {self.path}"}]})

    def do_POST(self) -> None:
        st = self.server.state
        body = self._body()
        if self.path == "/_fake/faults":
            with st.lock:
                st.faults.extend(body.get("faults", []))
                st.slow_s = float(body.get("slow_s", st.slow_s))
                if body.get("burst_s"):
                    st.burst = {"until": st.now() + float(body["burst_s"]),
                                "status": int(body.get("burst_status", 500)),
                                "retry_after": body.get("retry_after"), "accept": bool(body.get("burst_accept"))}
                for key in ("activity", "activity_lag_s", "event_repeat"):
                    if key in body:
                        setattr(st, key, body[key])
            return self._send(200, {"queued": len(st.faults)})
        if self.path == "/_fake/advance":
            with st.lock:
                st.offset += float(body.get("seconds", 0))
                st.tick()
                return self._send(200, {"offset": st.offset, "now": st.now()})
        if self.path == "/_fake/reset":
            with st.lock:
                st.__init__(st.validator)  # type: ignore[misc]
            return self._send(200, {})
        if not self._authorized():
            return None
        if self.path == "/v3/mail/send":
            return self._mail_send(body)
        if self._in_burst():
            return None
        if self.path == "/v3/mail/batch":
            batch_id = uuid.uuid4().hex
            with st.lock:
                st.requests["POST mail/batch"] += 1
                st.batches[batch_id] = {"status": None, "changed_at": st.now(), "times": []}
            return self._send(201, {"batch_id": batch_id})
        if self.path == "/v3/user/scheduled_sends":
            return self._hold(body or {})
        return self._send(404, {"errors": [{"message": f"no route {self.path}"}]})

    def _hold(self, body: dict[str, Any]) -> None:
        """Pause or cancel a batch, under SendGrid's two conditions (10 minutes, 10 batches)."""
        st = self.server.state
        with st.lock:
            st.requests["POST scheduled_sends"] += 1
            st.tick()
            batch_id, status = str(body.get("batch_id")), body.get("status")
            batch = st.batches.get(batch_id)
            problem: tuple[str | None, str] | None = None
            if status not in ("cancel", "pause") or batch is None:
                problem = ("batch_id", "invalid batch id")
            elif batch["status"] is not None:
                problem = (None, "batch already has a status")
            elif batch["times"] and st.now() > min(batch["times"]) - CANCEL_CUTOFF_S:
                problem = ("batch_id", "cannot cancel or pause a batch later than 10 minutes before its send_at")
            elif len(st.live_holds()) >= CANCEL_LIMIT:
                problem = (None, f"maximum of {CANCEL_LIMIT} paused or cancelled batches reached")
            if problem:
                st.refused_cancels.append({"batch_id": batch_id, "message": problem[1], "at": st.now()})
                return self._send(400, {"errors": [{"field": problem[0], "message": problem[1]}]})
            assert batch is not None
            batch.update(status=status, changed_at=st.now())
        return self._send(201, {"batch_id": batch_id, "status": status})

    def _activity(self, query: dict[str, list[str]]) -> None:
        """Email Activity: messages processed by now whose custom arg matches ``unique_args['k']="v"``."""
        st = self.server.state
        with st.lock:
            st.requests["GET messages"] += 1
            if not st.activity:
                return self._send(403, {"errors": [{"field": None, "message": "access forbidden"}]})
            st.tick()
            text = query.get("query", [""])[0]
            key, _, value = text.partition("=")
            key = key.strip().removeprefix("unique_args['").removesuffix("']")
            value = value.strip().strip('"')
            limit = min(int(query.get("limit", ["10"])[0]), 1000)
            visible = st.now() - st.activity_lag_s
            rows = [{"msg_id": m["message_id"], "to_email": m["email"], "status": "delivered",
                     "last_event_time": m["at"]} for m in st.delivered
                    if m["custom_args"].get(key) == value and m["at"] <= visible]
        return self._send(200, {"messages": rows[:limit]})

    def _suppressions(self) -> None:
        from urllib.parse import parse_qs, urlsplit

        st = self.server.state
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        with st.lock:
            st.requests[f"GET {url.path}"] += 1
            if parts[1] == "asm":  # /v3/asm/groups/<id>/suppressions
                return self._send(200, list(st.suppression_lists.get(f"asm_{parts[3]}", [])))
            rows = [r for r in st.suppression_lists.get(parts[2], [])
                    if int(r.get("created", 0)) >= int(query.get("start_time", 0))]
        offset, limit = int(query.get("offset", 0)), min(int(query.get("limit", 500)), 500)
        return self._send(200, rows[offset:offset + limit])

    def _mail_send(self, body: Any) -> None:
        st = self.server.state
        with st.lock:
            st.requests["POST mail/send"] += 1
            fault = st.faults.pop(0) if st.faults else None
            slow_s = st.slow_s
        if self._in_burst(accept=False):
            return None
        if fault == "429":
            reset = int(st.now()) + 1
            return self._send(429, {"errors": [{"field": None, "message": "too many requests"}]},
                              {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0",
                               "X-RateLimit-Reset": str(reset)})
        if fault == "500":
            return self._send(500, {"errors": [{"message": "internal error"}]})
        if fault == "400":
            return self._send(400, {"errors": [{"field": "personalizations", "message": "injected rejection"}]})
        errors = sorted(st.validator.iter_errors(body), key=lambda e: list(e.path))
        problems = []
        for e in errors:
            problems.append({"field": ".".join(str(p) for p in e.path) or None, "message": e.message})
        now = st.now()
        if body and body.get("batch_id") is not None and body["batch_id"] not in st.batches:
            problems.append({"field": "batch_id", "message": "unknown batch id"})
        times = [p.get("send_at", body.get("send_at")) for p in body["personalizations"]] if body and not errors else []
        if any(t is not None and t > now + MAX_AHEAD_S for t in times):
            problems.append({"field": "send_at", "message": "send_at may be at most 72 hours in the future"})
        if problems:
            with st.lock:
                st.rejected.append({"problems": problems})
            return self._send(400, {"errors": problems[:20]})
        message_id = uuid.uuid4().hex[:22]
        batch_id = body.get("batch_id")
        recipients = [(to["email"], (p.get("custom_args") or {}).get("send_id"))
                      for p in body["personalizations"] for to in p["to"]]
        with st.lock:
            st.accepted.append({"batch_id": batch_id, "send_at": body.get("send_at"), "message_id": message_id,
                                "recipients": recipients, "bytes": len(json.dumps(body)), "at": now})
            for p, at in zip(body["personalizations"], times, strict=True):
                at = now if at is None else float(at)  # a time already past: sent at once
                if batch_id:
                    st.batches[batch_id]["times"].append(at)
                for to in p["to"]:
                    st.scheduled.append({"email": to["email"], "send_id": (p.get("custom_args") or {}).get("send_id"),
                                         "custom_args": dict(p.get("custom_args") or {}), "send_at": at,
                                         "batch_id": batch_id, "message_id": message_id})
            st.tick()
        if fault == "accept_500" or self._in_burst(accept=True):
            if fault == "accept_500":
                self._send(500, {"errors": [{"message": "internal error"}]})
            return None
        if fault == "accept_drop":
            self.close_connection = True  # accepted, and the connection closes without an answer
            return None
        if fault == "accept_slow":
            time.sleep(slow_s)
        return self._send(202, None, {"X-Message-Id": message_id})


class _Server(QuietServer):
    state: State


class FakeSendGrid(LoopbackFake[State]):
    """The fake in a background thread: ``with FakeSendGrid() as sg: ... sg.url ...``."""

    server: _Server

    def __init__(self, validator: Any = None) -> None:
        super().__init__(_Server, _Handler, State(validator or mail_send_validator()))

    def fault(self, *faults: str, slow_s: float | None = None) -> None:
        super().fault(*faults)
        if slow_s is not None:
            with self.state.lock:
                self.state.slow_s = slow_s

    def burst(self, seconds: float, *, status: int = 500, retry_after: int | None = None,
              accept: bool = False) -> None:
        """Answer every API request with ``status`` for the next ``seconds`` of the fake's clock."""
        with self.state.lock:
            self.state.burst = {"until": self.state.now() + seconds, "status": status, "retry_after": retry_after,
                                "accept": accept}

    def now(self) -> float:
        with self.state.lock:
            return self.state.now()

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (and send what has become due)."""
        with self.state.lock:
            self.state.offset += seconds
            self.state.tick()

    def settle(self) -> None:
        with self.state.lock:
            self.state.settle()



def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m martech.testing.fake_sendgrid")
    parser.add_argument("--port-file", type=Path, required=True, help="where to write the port once listening")
    args = parser.parse_args(argv)
    fake = FakeSendGrid()
    tmp = args.port_file.with_suffix(".tmp")
    tmp.write_text(str(fake.server.server_address[1]))
    tmp.replace(args.port_file)
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
