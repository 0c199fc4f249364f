"""Bring your own data as a mode of its own: export files instead of the simulator's shop database.

``MARTECH_BYOD=1`` (or ``martech --byod ...``) turns the simulator's shop database off: a source of kind
``sql`` without a URL of its own (the ``shop`` schema the simulator writes into the warehouse) is not pulled,
so the ``ingest`` DAG loads the export files and CRM exports only. Nothing tracked has to be edited.

``martech byod check <folder>`` reads every file of an exports folder without loading anything and says
what each would become: rows that would land, rows that would be quarantined and why, files refused, and
folders or files that would not be read at all.

The worked example (``martech byod setup`` / ``martech byod run``) is developer tooling:
:mod:`martech.devtools.byod_example`.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

VARIABLE = "MARTECH_BYOD"


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
