"""How well staging catches the simulator's planted defects: precision and recall per kind.

The simulator labels every row it spoiled in ``sim_truth.defects`` (which the pipeline never reads).
Staging records what it did in ``raw.quarantine`` (reason_code), ``staging.corrections`` (kind) and
``staging.merged_rows`` (kind). A detection and a label match when they name the same raw table, the same
row (``file:line`` for files, else the row's natural key) and the same kind.

For a kind: precision = matched detections / detections of that kind, recall = matched labels / labels
of that kind. Both are 1.0 when staging finds every planted row and flags no clean one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from martech.simulate.defects import BY_CODE, KINDS

_LABELS = """
    select distinct table_name, coalesce(source_file || ':' || line_no, row_key) as ref, kind
    from sim_truth.defects
"""

_DETECTIONS = """
    select distinct replace(table_name, 'raw.', '') as table_name, source_ref as ref, reason_code as kind
    from raw.quarantine where reason_code is not null
    union
    select distinct replace(table_name, 'raw.', ''), source_ref, kind from staging.corrections
    union
    select distinct replace(table_name, 'raw.', ''), source_ref, kind from staging.merged_rows
"""


@dataclass(frozen=True)
class KindScore:
    kind: str
    table: str
    handling: str
    labels: int
    detections: int
    matched: int

    @property
    def precision(self) -> float:
        return self.matched / self.detections if self.detections else (1.0 if not self.labels else 0.0)

    @property
    def recall(self) -> float:
        return self.matched / self.labels if self.labels else 1.0


def score(conn: Any) -> list[KindScore]:
    """One score per kind of the catalogue (in catalogue order), from the warehouse as staged."""
    rows = conn.execute(sa.text(f"""
        with labels as ({_LABELS}), detections as ({_DETECTIONS})
        select k.kind,
               (select count(*) from labels as l where l.kind = k.kind) as labels,
               (select count(*) from detections as d where d.kind = k.kind) as detections,
               (select count(*) from labels as l join detections as d using (table_name, ref, kind)
                where l.kind = k.kind) as matched
        from unnest(cast(:kinds as text[])) as k (kind)
    """), {"kinds": [k.code for k in KINDS]}).all()
    return [KindScore(kind=r.kind, table=BY_CODE[r.kind].table, handling=BY_CODE[r.kind].handling,
                      labels=r.labels, detections=r.detections, matched=r.matched) for r in rows]


def misses(conn: Any, kind: str, limit: int = 10) -> dict[str, list[tuple[str, str]]]:
    """Examples of labels staging did not find and detections no label explains, for one kind."""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, query in (
        ("missed", f"select l.table_name, l.ref from ({_LABELS}) as l where l.kind = :k and not exists ("
                   f"select 1 from ({_DETECTIONS}) as d where (d.table_name, d.ref, d.kind) ="
                   " (l.table_name, l.ref, l.kind)) limit :n"),
        ("unexplained", f"select d.table_name, d.ref from ({_DETECTIONS}) as d where d.kind = :k and not exists ("
                        f"select 1 from ({_LABELS}) as l where (d.table_name, d.ref, d.kind) ="
                        " (l.table_name, l.ref, l.kind)) limit :n"),
    ):
        out[name] = [tuple(r) for r in conn.execute(sa.text(query), {"k": kind, "n": limit}).all()]
    return out


def markdown_table(scores: list[KindScore]) -> str:
    lines = ["| kind | raw table | handling | labels | detections | matched | precision | recall |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for s in scores:
        lines.append(f"| `{s.kind}` | {s.table} | {s.handling} | {s.labels:,} | {s.detections:,} | {s.matched:,}"
                     f" | {s.precision:.3f} | {s.recall:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m martech.devtools.defect_eval --url <scratch db> --customers 20000 --rate 0.03``.

    Simulates a shop with planted defects into the database given (its pipeline schemas are dropped
    first: point it at a scratch database), ingests and stages it, and prints the score table and the
    row accounting.
    """
    import argparse
    import datetime as dt
    import tempfile
    import time
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m martech.devtools.defect_eval", description=main.__doc__)
    parser.add_argument("--url", required=True, help="scratch PostgreSQL database (its pipeline schemas are dropped)")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 6, 1))
    args = parser.parse_args(argv)

    from martech import pipeline
    from martech.db import migrate
    from martech.ingest.landing import cutoff_for
    from martech.simulate import generate_sources
    from martech.staging import accounting
    from martech.warehouse import Warehouse

    wh = Warehouse(args.url)
    engine = wh.engine
    with engine.begin() as conn:
        for schema in ("shop", "sim_truth", "raw", "staging", "marts", "audiences", "campaigns", "kpis"):
            conn.execute(sa.text(f"drop schema if exists {schema} cascade"))
    migrate(engine)
    with tempfile.TemporaryDirectory() as landing:
        generate_sources(engine, Path(landing), as_of=args.as_of, customers=args.customers, seed=args.seed,
                         defect_rate=args.rate)
        t0 = time.perf_counter()
        pipeline.ingest_shop(wh, args.as_of)
        pipeline.ingest_crm(wh, args.as_of, folder=Path(landing) / "crm")
        t1 = time.perf_counter()
        pipeline.build_staging(wh, args.as_of)
        t2 = time.perf_counter()
    print(f"customers={args.customers} defect_rate={args.rate} seed={args.seed} ingest={t1 - t0:.1f}s"
          f" staging={t2 - t1:.1f}s")
    with engine.connect() as conn:
        print(markdown_table(score(conn)))
    for account in accounting.check(engine, args.as_of, cutoff_for(args.as_of)):
        print(account.line())
    wh.dispose()


if __name__ == "__main__":
    main()
