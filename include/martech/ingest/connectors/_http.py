"""A small typed JSON-over-HTTP client with one explicit retry policy, shared by the SaaS connectors.

Retried: 429 (waiting what ``Retry-After`` asks, else backing off), 5xx and connection failures
(exponential backoff with full jitter, capped). Not retried: other 4xx; 401/403 raise
:class:`AuthError` so that a bad token fails the task at once with a message saying which
connection to fix.

Waiting goes through one ``sleep`` function per client. :func:`set_testing` turns every wait into a
no-op (the waits are still recorded in :attr:`HttpClient.waits`), so the retry paths are tested
without sleeping; a test may also pass its own ``sleep`` (e.g. one that advances a fake server's
clock).
"""

from __future__ import annotations

import email.utils
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any

_TESTING = False


def set_testing(on: bool = True) -> None:
    """Make every client's waits instant (still recorded); for tests only."""
    global _TESTING
    _TESTING = on


def _default_sleep(seconds: float) -> None:
    if not _TESTING:
        time.sleep(seconds)


class ApiError(RuntimeError):
    """The API answered with an error that retrying will not fix, or retries ran out."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class AuthError(ApiError):
    """The API rejected the credentials (401/403)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8               # tries per request, the first included
    backoff_s: float = 1.0          # first backoff; doubles per retry
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 300.0  # a longer Retry-After is treated as an outage, not waited out
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def backoff(self, retry: int, rng: random.Random) -> float:
        # Full jitter: concurrent clients that failed together do not retry together.
        return rng.uniform(0, min(self.max_backoff_s, self.backoff_s * (2 ** retry)))


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    body: bytes
    url: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds, possibly fractional, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass
class HttpClient:
    """``base_url`` plus fixed headers (the credentials); one method, :meth:`request`."""

    base_url: str
    headers: Mapping[str, str]
    service: str = "API"            # names the service in error messages
    auth_hint: str = ""             # what to fix when the credentials are rejected
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float = 30.0
    sleep: Callable[[float], None] = _default_sleep
    rng: random.Random = field(default_factory=random.Random)
    waits: list[tuple[str, float]] = field(default_factory=list)
    requests: int = 0

    def wait(self, seconds: float, reason: str) -> None:
        self.waits.append((reason, seconds))
        self.sleep(seconds)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: Any = None) -> Response:
        url = path if "://" in path else self.base_url.rstrip("/") + path
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", **self.headers}
        if data is not None:
            headers["Content-Type"] = "application/json"
        problem = ""
        for attempt in range(self.policy.attempts):
            self.requests += 1
            try:
                req = urllib.request.Request(url, data=data, method=method, headers=headers)
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()},
                                    resp.read(), url)
            except urllib.error.HTTPError as exc:
                status, text = exc.code, exc.read().decode("utf-8", "replace")
                hdrs = {k.lower(): v for k, v in (exc.headers or {}).items()}
                if status in (401, 403):
                    raise AuthError(f"{self.service} rejected the credentials ({status}): {text[:300]}"
                                    + (f"; {self.auth_hint}" if self.auth_hint else ""), status, text) from None
                if status not in self.policy.retry_statuses:
                    raise ApiError(f"{self.service} {method} {_safe(url)} failed with {status}: {text[:500]}",
                                   status, text) from None
                problem = f"{status}: {text[:200]}"
                wait = retry_after_s(hdrs.get("retry-after")) if status == 429 else None
                if wait is not None and wait > self.policy.max_retry_after_s:
                    raise ApiError(f"{self.service} asked to wait {wait:.0f} s (Retry-After); giving up",
                                   status, text) from None
            except (urllib.error.URLError, HTTPException, ConnectionError, TimeoutError) as exc:
                problem, wait = f"connection failed: {getattr(exc, 'reason', exc)}", None
            if attempt + 1 < self.policy.attempts:
                self.wait(wait if wait is not None else self.policy.backoff(attempt, self.rng),
                          problem.split(":", 1)[0])
        raise ApiError(f"{self.service} {method} {_safe(url)} still failing after {self.policy.attempts}"
                       f" attempts; last: {problem}")


def _safe(url: str) -> str:
    """The URL without its query string (which may carry cursors or search terms) for messages."""
    return url.split("?", 1)[0]
