"""The ``martech`` command line: a thin layer over the library.

    martech warehouse url      start the embedded warehouse if needed and print its URL
                               (--analyst: the read-only analyst's URL, access created if missing)
    martech warehouse stop     stop the embedded warehouse
    martech warehouse status   rows per public table
    martech simulate           generate the simulated shop database and CRM export
    martech demo               run the whole chain through Airflow and summarise it
    martech webhook            serve the SendGrid event webhook and one-click unsubscribes
    martech airflow-env        print the environment of the local Airflow (for `make airflow`)
    martech byod check DIR     what each export file under DIR would become, before anything is loaded
    martech byod setup HOME    a separate MARTECH_HOME holding the worked "Bring your own data" example
    martech byod run           ingest, staging and customer models on the export files, then the results
    martech report [--open]    write the KPI report to a file (and open it)
    martech campaigns validate check every campaign file; exit 1 and list every problem if any
    martech campaigns preview ID [--contact N]
                               render N members per variant of the campaign's latest audience
                               snapshot to the outbox's previews folder, sending nothing

    --byod (or MARTECH_BYOD=1) turns the simulator's shop database off: export files only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from martech.devtools.demo import DEMO_DATE

    parser = argparse.ArgumentParser(prog="martech", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--byod", action="store_true",
                        help="bring your own data: do not pull the simulator's shop database (MARTECH_BYOD=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    wh = sub.add_parser("warehouse", help="the embedded PostgreSQL warehouse")
    wh.add_argument("action", choices=["url", "stop", "status"])
    wh.add_argument("--analyst", action="store_true",
                    help="with url: the read-only analyst role's URL (marts, kpis and analyst views only)")

    sim = sub.add_parser("simulate", help="generate the simulated shop and CRM sources")
    sim.add_argument("--customers", type=_positive, default=20_000)
    sim.add_argument("--as-of", type=_date, default=DEMO_DATE, help="history ends the day before")
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument("--replenishment", type=float, default=0.0, metavar="SHARE",
                     help="share of ordering customers with a consumable habit (docs/simulator.md); default 0")

    demo = sub.add_parser("demo", help="run the whole chain through Airflow")
    demo.add_argument("--customers", type=_positive, default=None,
                      help="simulated customers (default: MARTECH_DEMO_CUSTOMERS, else 20000)")
    demo.add_argument("--date", type=_date, default=DEMO_DATE, help="the send day")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--keep", action="store_true", help="do not reset the demo's schemas first")

    hook = sub.add_parser("webhook", help="serve the SendGrid event webhook (MARTECH_SENDGRID_WEBHOOK_KEY)")
    hook.add_argument("--host", default="127.0.0.1")
    hook.add_argument("--port", type=_positive, default=8089)

    sub.add_parser("airflow-env", help="print shell exports for the local Airflow")

    byod = sub.add_parser("byod", help="bring your own data: check export files, set up and run the example")
    byod_sub = byod.add_subparsers(dest="action", required=True)
    byod_sub.add_parser("check", help="what each export file would become").add_argument("folder")
    byod_sub.add_parser("setup", help="a new MARTECH_HOME with the worked example").add_argument("home")
    byod_run = byod_sub.add_parser("run", help="ingest, staging and customer models, then the result queries")
    byod_run.add_argument("--date", type=_date, default=None, help="the run date (default: the example's)")

    rep = sub.add_parser("report", help="write the KPI report (the one the Airflow plugin serves) to a file")
    rep.add_argument("--date", type=_date, default=None, help="data before this date (default: tomorrow, UTC)")
    rep.add_argument("--out", type=Path, default=None, help="default: MARTECH_HOME/reports/report.html")
    rep.add_argument("--open", action="store_true", help="open it in the default browser")

    camp = sub.add_parser("campaigns", help="check and preview campaign files")
    camp_sub = camp.add_subparsers(dest="action", required=True)
    camp_sub.add_parser("validate", help="check every campaign file, list every problem")
    prev = camp_sub.add_parser("preview", help="render a campaign's latest audience to the outbox, send nothing")
    prev.add_argument("campaign_id")
    prev.add_argument("--contact", type=_positive, default=1, metavar="N", help="members rendered per variant")
    return parser


def main(argv: list[str] | None = None) -> int:
    from martech.warehouse import WarehouseError

    args = build_parser().parse_args(argv)
    if args.byod:
        import os

        os.environ["MARTECH_BYOD"] = "1"
    try:
        return _run(args)
    except WarehouseError as exc:
        print(f"martech: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if args.command == "warehouse":
        import os

        from martech.warehouse import EmbeddedPostgres, check_url, resolve_url, warehouse_dir

        if args.action in ("url", "status"):
            url = resolve_url()
            check_url(url, connect=True, name="MARTECH_WAREHOUSE_URL" if os.environ.get("MARTECH_WAREHOUSE_URL")
                      else "the embedded warehouse's URL")
        if args.action == "url" and args.analyst:
            from martech.pipeline import prepare_warehouse
            from martech.privacy.access import analyst_url
            from martech.warehouse import Warehouse

            with Warehouse(url) as wh:
                prepare_warehouse(wh)
            print(analyst_url(url))
        elif args.action == "url":
            print(url)
        elif args.action == "stop":
            stopped = EmbeddedPostgres(warehouse_dir()).stop()
            print("stopped" if stopped else "the embedded warehouse was not running")
        else:
            from martech.devtools.summaries import table_counts
            from martech.warehouse import Warehouse

            with Warehouse(url) as wh:
                for name, n in table_counts(wh.engine).items():
                    print(f"{name:<30} {'-' if n is None else n}")
        return 0
    if args.command == "simulate":
        from martech import paths
        from martech.simulate import generate_sources
        from martech.warehouse import Warehouse

        with Warehouse.resolve() as wh:
            summary = generate_sources(wh.engine, paths.landing_dir(), as_of=args.as_of, customers=args.customers,
                                       seed=args.seed, replenishment=args.replenishment)
        print("\n".join(summary.lines()))
        return 0
    if args.command == "demo":
        from martech.devtools import demo
        customers = args.customers if args.customers is not None else demo.customers_from_env()
        return demo.run(run_date=args.date, customers=customers, seed=args.seed, fresh=not args.keep)
    if args.command == "webhook":
        import uvicorn

        uvicorn.run("martech.events.webhook:app_from_env", factory=True, host=args.host, port=args.port)
        return 0
    if args.command == "airflow-env":
        from martech.devtools import airflow_env
        from martech.warehouse import resolve_url

        for key, value in airflow_env.configure(resolve_url()).items():
            print(f"export {key}='{value}'")
        return 0
    if args.command == "byod":
        return _byod(args)
    if args.command == "report":
        import webbrowser

        from martech.kpis.report import write_report
        from martech.warehouse import Warehouse

        run_date = args.date or dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
        with Warehouse.resolve() as wh:
            path = write_report(wh.engine, run_date, args.out)
        print(path)
        if args.open:
            webbrowser.open(path.as_uri())
        return 0
    if args.command == "campaigns":
        return _campaigns(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _byod(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from martech.devtools import byod_example
    from martech.ingest import byod

    if args.action == "check":
        lines, ok = byod.check(args.folder)
        print("\n".join(lines))
        return 0 if ok else 1
    if args.action == "setup":
        try:
            steps = byod_example.setup(Path(args.home))
        except FileExistsError as exc:
            print(exc, file=sys.stderr)
            return 1
        print("The worked example is in place. Next:\n  " + "\n  ".join(steps))
        return 0
    from martech.warehouse import Warehouse

    os.environ["MARTECH_BYOD"] = "1"
    with Warehouse.resolve() as wh:
        print("\n".join(byod_example.run(wh, args.date or byod_example.EXAMPLE_DATE)))
    return 0


def _campaigns(args: argparse.Namespace) -> int:
    from martech.campaigns import preview

    if args.action == "validate":
        valid, problems = preview.validate()
        for line in problems:
            print(line, file=sys.stderr)
        print(f"{valid} campaign file(s) valid, {len(problems)} problem(s)")
        return 1 if problems else 0
    from martech.campaigns.spec import CampaignSpecError
    from martech.warehouse import Warehouse

    with Warehouse.resolve() as wh:
        try:
            written = preview.preview(wh.engine, args.campaign_id, contacts=args.contact)
        except (CampaignSpecError, LookupError) as exc:
            print(exc, file=sys.stderr)
            return 1
    print("\n".join(str(p) for p in written) or "the latest snapshot has no treatment members to render")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
