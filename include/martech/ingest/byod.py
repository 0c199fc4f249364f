"""Bring your own data as a mode of its own: export files instead of the simulator's shop database.

``MARTECH_BYOD=1`` (or ``martech --byod ...``) turns the simulator's shop database off: a source of kind
``sql`` without a URL of its own (the ``shop`` schema the simulator writes into the warehouse) is not pulled,
so the ``ingest`` DAG loads the export files and CRM exports only. Nothing tracked has to be edited.

``martech byod check <folder>`` reads every file of an exports folder without loading anything and says
what each would become: rows that would land, rows that would be quarantined and why, files refused, and
folders or files that would not be read at all.

``martech byod setup <home>`` prepares a separate ``MARTECH_HOME`` holding the worked example (shop export
files and a CRM contacts file whose ids cannot collide with the simulator's), and ``martech byod run`` runs
ingest, staging and the customer models there and prints the queries that show the result.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from martech import paths

VARIABLE = "MARTECH_BYOD"
EXAMPLE_DATE = dt.date(2026, 5, 2)


def enabled() -> bool:
    return os.environ.get(VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def check(root: Any) -> tuple[list[str], bool]:
    """One line per file (and per thing that would not be read) of an exports folder; ok is False when a
    file would be refused or nothing would load."""
    import fsspec

    from martech.ingest import files

    fs, base = fsspec.core.url_to_fs(str(root))
    if not fs.exists(base):
        return [f"{root}: no such folder"], False
    plan = files.scan(fs, base)
    lines: list[str] = []
    ok = bool(plan.files)
    for path, entity in plan.files:
        name = path.rsplit("/", 1)[-1]
        with fs.open(path, "rb") as fh:
            data = fh.read()
        records, refused = files.read(name, data, entity)
        raw_table = files.CONTRACT[entity][0]
        where = f"{path[len(base):].lstrip('/')} → {raw_table}"
        if refused:
            ok = False
            lines.append(f"{where}: REFUSED, nothing would load: {refused}")
            continue
        bad = [r for r in records if r.fields is None]
        line = f"{where}: {len(records) - len(bad):,} rows would load"
        if bad:
            codes = Counter(r.code for r in bad)
            line += f", {len(bad):,} quarantined ({', '.join(f'{c} {n}' for c, n in sorted(codes.items()))})"
            first = bad[0]
            line += f"; first: line {first.line}: {first.problem}"
        lines.append(line)
    lines += [f"not read: {s}" for s in plan.unrecognised]
    if not plan.files:
        lines.append(f"{root}: no export files found; expected folders named {', '.join(files.REQUIRED)}")
    return lines, ok


def setup(home: Path) -> list[str]:
    """Create ``home`` as a MARTECH_HOME holding the worked example; return the commands to run next."""
    home = Path(home).resolve()
    if (home / "warehouse").exists():
        raise FileExistsError(f"{home} already holds a warehouse; choose a new folder for the example")
    examples = paths.PROJECT_ROOT / "examples"
    shutil.copytree(examples / "byod", home / "landing" / "files", dirs_exist_ok=True)
    shutil.copytree(examples / "byod-crm", home / "landing" / "crm", dirs_exist_ok=True)
    return [f"export MARTECH_HOME={home} MARTECH_BYOD=1; unset MARTECH_WAREHOUSE_URL",
            f"martech byod check {home / 'landing' / 'files'}",
            f"martech byod run --date {EXAMPLE_DATE.isoformat()}"]


RESULT_QUERIES = (
    "select customer_id, email, country from staging.customers order by customer_id",
    "select order_id, customer_id, order_date, total_amount from staging.orders order by order_id",
    "select customer_id, segment, recency_days, frequency, monetary from marts.customer_rfm order by customer_id",
    "select contact_id, customer_id, email, is_contactable, lifecycle_status from marts.customer_360"
    " order by contact_id",
)


def run(url: str, run_date: dt.date) -> list[str]:
    """Ingest (files and CRM exports), staging and the customer models for ``run_date``; then the result
    queries and their rows."""
    import sqlalchemy as sa

    from martech import pipeline
    from martech.db import make_engine

    pipeline.prepare_warehouse(url)
    pipeline.ingest_files(url, run_date, root=str(paths.landing_dir() / "files"))
    pipeline.ingest_crm(url, run_date, folder=paths.landing_dir() / "crm")
    pipeline.build_staging(url, run_date)
    pipeline.build_customer_models(url, run_date)
    lines: list[str] = []
    eng = make_engine(url)
    try:
        with eng.connect() as conn:
            for query in RESULT_QUERIES:
                lines.append(f"{query};")
                lines += ["  " + " | ".join(str(v) for v in row) for row in conn.execute(sa.text(query))]
    finally:
        eng.dispose()
    return lines
