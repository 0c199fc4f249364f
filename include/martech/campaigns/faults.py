"""Named crash points for fault-injection tests of the send protocol.

``checkpoint(name)`` does nothing unless the environment variable ``MARTECH_KILL_AT`` names this point as
``<name>#<n>``: then the n-th time the process passes it, the process sends itself SIGKILL (no cleanup,
no ``finally``, no flush — as a machine losing power or the OOM killer would). Production code calls
checkpoints at every step of the protocol where a crash changes what a rerun must do.
"""

from __future__ import annotations

import os
import signal

ENV = "MARTECH_KILL_AT"
POINTS = (
    "after_plan",  # ledger rows committed, nothing claimed
    "after_claim",  # attempt recorded (attempts + 1, attempt_ref) and committed, request not made
    "before_request",  # inside the transport, just before the HTTP call
    "after_request",  # provider accepted (or not), results not yet recorded
    "after_mark_sent",  # results committed
    "after_cancel",  # an in-doubt attempt was cancelled at the provider, ledger not yet updated
)
_seen: dict[str, int] = {}


def checkpoint(name: str) -> None:
    target = os.environ.get(ENV)
    if not target:
        return
    point, _, nth = target.partition("#")
    if point != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
