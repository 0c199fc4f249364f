"""A local stand-in for SendGrid's v3 API, for contract tests and benchmarks (loopback only).

It validates every ``POST /v3/mail/send`` body against the request schema of SendGrid's published
OpenAPI document (``tsg_mail_v3.json``) and answers as SendGrid does: 202 with ``X-Message-Id``, 400 with
an ``errors`` body, 401 without a bearer token, 429 with ``X-RateLimit-*`` headers, 5xx. It also serves
batch ids (``POST /v3/mail/batch``) and scheduled-send cancellation (``/v3/user/scheduled_sends``).

What it *delivers* is what a test counts: every personalization of an accepted request, unless the
request's batch was cancelled before its ``send_at``. Faults are queued through ``/_fake/faults``:

  ``429``          rate limited, not accepted          ``500``    server error, not accepted
  ``400``          rejected                            ``accept_500``   accepted, then answers 500
  ``accept_slow``  accepted, answers after ``slow_s`` (longer than the client's timeout)

Run it in a thread (:class:`FakeSendGrid`) or as its own process
(``python -m martech.testing.fake_sendgrid --port-file PATH``), which fault-injection tests need so that
killing the sender never kills the server.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# SendGrid's published OpenAPI documents (MIT, see LICENSE there), vendored for the contract tests.
CONTRACTS = Path(__file__).resolve().parents[3] / "tests" / "contracts" / "sendgrid"
_ENV_CONTRACTS = "MARTECH_SENDGRID_CONTRACTS"


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
        self.faults: list[str] = []
        self.slow_s = 2.0
        self.accepted: list[dict[str, Any]] = []  # {batch_id, send_at, message_id, recipients: [(email, send_id)]}
        self.batches: dict[str, str | None] = {}  # batch id -> None | "cancel" | "pause"
        self.requests: Counter[str] = Counter()
        self.rejected: list[dict[str, Any]] = []
        # SendGrid's suppression lists: list name -> rows ({"created", "email", ...}); "asm_<id>" -> emails
        self.suppression_lists: dict[str, list[Any]] = {}

    def deliveries(self) -> Counter[str]:
        """send_id (or address when there is none) -> times delivered."""
        out: Counter[str] = Counter()
        for req in self.accepted:
            if req["batch_id"] and self.batches.get(req["batch_id"]) == "cancel":
                continue
            for email, send_id in req["recipients"]:
                out[send_id or email] += 1
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "batches": self.batches, "requests": dict(self.requests),
                "rejected": self.rejected, "deliveries": dict(self.deliveries()), "faults": self.faults}


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

    def do_GET(self) -> None:
        st = self.server.state
        if self.path == "/_fake/state":
            with st.lock:
                return self._send(200, st.snapshot())
        if not self._authorized():
            return None
        if self.path.startswith("/v3/suppression/") or self.path.startswith("/v3/asm/groups/"):
            return self._suppressions()
        if self.path.startswith("/v3/user/scheduled_sends/"):
            batch_id = self.path.rsplit("/", 1)[1]
            with st.lock:
                st.requests["GET scheduled_sends"] += 1
                status = st.batches.get(batch_id)
            return self._send(200, [{"batch_id": batch_id, "status": status}] if status else [])
        return self._send(404, {"errors": [{"message": f"no route {self.path}"}]})

    def do_POST(self) -> None:
        st = self.server.state
        body = self._body()
        if self.path == "/_fake/faults":
            with st.lock:
                st.faults.extend(body.get("faults", []))
                st.slow_s = float(body.get("slow_s", st.slow_s))
            return self._send(200, {"queued": len(st.faults)})
        if self.path == "/_fake/reset":
            with st.lock:
                st.__init__(st.validator)  # type: ignore[misc]
            return self._send(200, {})
        if not self._authorized():
            return None
        if self.path == "/v3/mail/batch":
            batch_id = uuid.uuid4().hex
            with st.lock:
                st.requests["POST mail/batch"] += 1
                st.batches[batch_id] = None
            return self._send(201, {"batch_id": batch_id})
        if self.path == "/v3/user/scheduled_sends":
            with st.lock:
                st.requests["POST scheduled_sends"] += 1
                batch_id, status = str((body or {}).get("batch_id")), (body or {}).get("status")
                if status not in ("cancel", "pause") or batch_id not in st.batches:
                    return self._send(400, {"errors": [{"field": "batch_id", "message": "invalid batch id"}]})
                if st.batches[batch_id] is not None:
                    return self._send(400, {"errors": [{"field": None,
                                                        "message": "batch already has a status"}]})
                st.batches[batch_id] = status
            return self._send(201, {"batch_id": batch_id, "status": status})
        if self.path == "/v3/mail/send":
            return self._mail_send(body)
        return self._send(404, {"errors": [{"message": f"no route {self.path}"}]})

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
        if fault == "429":
            reset = int(time.time()) + 1
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
        if body and body.get("batch_id") is not None and body["batch_id"] not in st.batches:
            problems.append({"field": "batch_id", "message": "unknown batch id"})
        if problems:
            with st.lock:
                st.rejected.append({"problems": problems})
            return self._send(400, {"errors": problems[:20]})
        message_id = uuid.uuid4().hex[:22]
        recipients = [(to["email"], (p.get("custom_args") or {}).get("send_id"))
                      for p in body["personalizations"] for to in p["to"]]
        with st.lock:
            st.accepted.append({"batch_id": body.get("batch_id"), "send_at": body.get("send_at"),
                                "message_id": message_id, "recipients": recipients,
                                "bytes": len(json.dumps(body))})
        if fault == "accept_500":
            return self._send(500, {"errors": [{"message": "internal error"}]})
        if fault == "accept_slow":
            time.sleep(slow_s)
        return self._send(202, None, {"X-Message-Id": message_id})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: State

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up (timeout) or was killed: expected in fault tests
        super().handle_error(request, client_address)


class FakeSendGrid:
    """The fake in a background thread: ``with FakeSendGrid() as sg: ... sg.url ...``."""

    def __init__(self, validator: Any = None) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.state = State(validator or mail_send_validator())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def state(self) -> State:
        return self.server.state

    def fault(self, *faults: str, slow_s: float | None = None) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)
            if slow_s is not None:
                self.state.slow_s = slow_s

    def __enter__(self) -> FakeSendGrid:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


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
