"""How long personal data is kept: raw email events, landed files, quarantined rows, the outbox and previews.

Periods are in days, from the environment (``MARTECH_RETENTION_<KIND>_DAYS``) or the defaults below;
``0`` keeps forever. Ages are measured from the run date, never the wall clock, so a rerun for the same
date removes the same things:

- ``raw_events``  rows of ``raw.email_events`` loaded before the cutoff (staging keeps what it needs);
- ``landing``     landed files whose complete batch (same name and checksum) ran before the cutoff;
- ``quarantine``  rows of ``raw.quarantine`` rejected by a run before the cutoff: a line rejected at
                  landing keeps its row (file, line, reason) without its content, because its ingest
                  batch counts it and the row accounting checks that count; a staging reject (which
                  staging writes afresh on every run) goes;
- ``outbox``      ``<outbox>/<campaign>/<run_id>/`` folders of runs before the cutoff;
- ``previews``    ``<outbox>/previews/<campaign>/<run_id>/`` folders of runs before the cutoff.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

EXPIRED = "removed: past its retention period"
DEFAULT_DAYS = {"raw_events": 400, "landing": 30, "quarantine": 90, "outbox": 30, "previews": 30}


@dataclass(frozen=True)
class RetentionPolicy:
    days: Mapping[str, int]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetentionPolicy:
        environ = os.environ if environ is None else environ
        days = {}
        for kind, default in DEFAULT_DAYS.items():
            key = f"MARTECH_RETENTION_{kind.upper()}_DAYS"
            text = (environ.get(key) or "").strip()
            try:
                days[kind] = int(text) if text else default
            except ValueError:
                raise ValueError(f"{key} must be a whole number of days (0 keeps forever), got {text!r}") from None
            if days[kind] < 0:
                raise ValueError(f"{key} must not be negative, got {days[kind]}")
        return cls(days)

    def cutoff(self, kind: str, run_date: dt.date) -> dt.date | None:
        """Things dated before this day are removed; None keeps everything."""
        n = self.days[kind]
        return run_date - dt.timedelta(days=n) if n else None


def apply_retention(engine: Engine, run_date: dt.date, *, landing: Path, outbox: Path,
                    policy: RetentionPolicy | None = None) -> dict[str, int]:
    """Remove what is older than its period; returns how many rows, files or run folders went, per kind."""
    policy = policy or RetentionPolicy.from_env()
    removed = dict.fromkeys(DEFAULT_DAYS, 0)
    with engine.begin() as conn:
        if (cut := policy.cutoff("raw_events", run_date)) is not None:
            removed["raw_events"] = conn.execute(sa.text(
                "delete from raw.email_events where _loaded_at < :c"), {"c": cut}).rowcount
        if (cut := policy.cutoff("quarantine", run_date)) is not None:
            removed["quarantine"] = conn.execute(sa.text(
                "delete from raw.quarantine where run_date < :c and stage <> 'landing'"), {"c": cut}).rowcount
            removed["quarantine"] += conn.execute(sa.text(
                "update raw.quarantine set received = :r, received_encoding = 'text'"
                " where run_date < :c and stage = 'landing' and received <> :r"),
                {"c": cut, "r": EXPIRED}).rowcount
        if (cut := policy.cutoff("landing", run_date)) is not None:
            old = {(r.source_file, r.checksum) for r in conn.execute(sa.text(
                "select source_file, checksum from raw.ingest_batches"
                " where source_file is not null and checksum is not null and run_date < :c"), {"c": cut})}
            removed["landing"] = _remove_landed(landing, old)
    if (cut := policy.cutoff("outbox", run_date)) is not None:
        removed["outbox"] = _remove_run_dirs(outbox, cut, skip={"previews"})
    if (cut := policy.cutoff("previews", run_date)) is not None:
        removed["previews"] = _remove_run_dirs(outbox / "previews", cut)
    return removed


def _remove_landed(landing: Path, old: set[tuple[str, str]]) -> int:
    if not landing.exists() or not old:
        return 0
    names = {name for name, _ in old}
    n = 0
    for path in sorted(landing.rglob("*")):
        if (path.is_file() and path.name in names
                and (path.name, hashlib.sha256(path.read_bytes()).hexdigest()) in old):
            path.unlink()
            n += 1
    return n


def _run_date_of(run_id: str) -> dt.date | None:
    # Run ids start with the run date: 2026-05-04, 2026-05-04T09, 2026-05-04.step2.
    try:
        return dt.date.fromisoformat(run_id[:10])
    except ValueError:
        return None


def _remove_run_dirs(root: Path, cutoff: dt.date, skip: frozenset[str] | set[str] = frozenset()) -> int:
    if not root.exists():
        return 0
    n = 0
    for campaign in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in skip):
        for run in sorted(p for p in campaign.iterdir() if p.is_dir()):
            day = _run_date_of(run.name)
            if day is not None and day < cutoff:
                shutil.rmtree(run)
                n += 1
    return n
