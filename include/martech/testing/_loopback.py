"""What the local API stand-ins share: a JSON-speaking HTTP server on 127.0.0.1 in a background thread.

Each fake (HubSpot, Shopify) keeps its own request handling and state; this holds the plumbing: a server
that ignores clients hanging up, a handler that answers JSON and records every status before the client
can read it, and a context-managed runner with fault injection.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound="LoopbackFake[Any]")
S = TypeVar("S")


class BadRequest(ValueError):
    """A request the real API would refuse with 400."""


class LoopbackState:
    """What every fake's state holds: a lock, the token it accepts, queued faults, what it answered."""

    def __init__(self, token: str) -> None:
        self.lock = threading.Lock()
        self.token = token
        self.faults: list[str] = []
        self.statuses: list[int] = []  # every status sent, in order
        self.answered = 0


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    state: Any
    fake: Any
    fail_after: int | None = None

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up mid-answer (timeouts, killed pulls) is part of the tests, not an error.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class JsonHandler(BaseHTTPRequestHandler):
    server: QuietServer
    protocol_version = "HTTP/1.1"
    content_type = "application/json; charset=utf-8"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        # Recorded before the client can read the answer, so a test that checks it right after never races.
        self.server.state.statuses.append(status)
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LoopbackFake(Generic[S]):
    """A fake API in a background thread: ``with Fake(...) as fake: ... fake.url``; ``S`` is its state's type."""

    def __init__(self, server_cls: type[QuietServer], handler: type[BaseHTTPRequestHandler], state: S) -> None:
        self.server = server_cls(("127.0.0.1", 0), handler)
        self.server.state = state
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def state(self) -> S:
        return self.server.state  # type: ignore[no-any-return]

    @property
    def fail_after(self) -> int | None:
        return self.server.fail_after

    @fail_after.setter
    def fail_after(self, n: int | None) -> None:
        self.server.fail_after = n

    def fault(self, *faults: str) -> None:
        """Queue faults the next requests answer with (names are the fake's own)."""
        state: Any = self.state
        with state.lock:
            state.faults.extend(faults)

    def __enter__(self: F) -> F:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
