"""Time the simulator at a given scale: ``python -m martech.simulate.scale 100000 --url postgresql://...``.

Runs :func:`~martech.simulate.sources.build_world` (in memory only) and then
:func:`~martech.simulate.generate_sources` (build, plant defects, COPY into PostgreSQL, write the CRM export)
once each, and prints seconds, peak resident memory and row counts. It drops and recreates the ``shop`` and
``sim_truth`` schemas of the database it is given: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("customers", type=int)
    parser.add_argument("--url", required=True, help="scratch PostgreSQL database (shop and sim_truth are dropped)")
    parser.add_argument("--defect-rate", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 6, 1))
    args = parser.parse_args(argv)

    from martech.db import make_engine
    from martech.simulate import generate_sources
    from martech.simulate.sources import build_world

    t0 = time.perf_counter()
    world = build_world(as_of=args.as_of, customers=args.customers, seed=args.seed)
    build_s = time.perf_counter() - t0
    del world
    engine = make_engine(args.url)
    with tempfile.TemporaryDirectory() as landing:
        t0 = time.perf_counter()
        summary = generate_sources(engine, Path(landing), as_of=args.as_of, customers=args.customers,
                                   seed=args.seed, defect_rate=args.defect_rate)
        gen_s = time.perf_counter() - t0
    engine.dispose()
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"customers={args.customers} defect_rate={args.defect_rate} build_world={build_s:.1f}s "
          f"generate_sources={gen_s:.1f}s peak_rss={peak_gb:.1f}GB planted_defects={summary.defects}")
    for line in summary.lines():
        print(line)


if __name__ == "__main__":
    main()
