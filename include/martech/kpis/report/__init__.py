"""The daily report: the KPI marts as pictures, one self-contained HTML file (inline SVG, inline CSS).

``build_report`` renders it from the warehouse; the ``kpis`` DAG writes it to ``report_path()`` after
rebuilding the tables, ``martech report`` writes the same file on demand, and the Airflow plugin
(``plugins/martech_report.py``) serves it together with a page per campaign (``campaign_page``).
Every figure names the public tables its numbers come from. Figures and queries: docs/report.md.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FIGURES", "Figure", "build_report", "campaign_page", "render", "report_path", "with_data_docs_href",
           "write_report"]

_TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Figure:
    key: str  # also the name of the shaping function in queries and the drawing function in figures
    title: str
    loads: tuple[str, ...]  # query names in queries.SOURCES, passed to the shaping function in this order
    note: str


FIGURES = (
    Figure("funnel", "Campaign funnels", ("campaign_daily", "campaign_exclusions"),
           "Audience (both arms and the excluded contacts) → sent → delivered → human opens → clicks → "
           "conversions of the treatment arm, all send days."),
    Figure("uplift_forest", "Uplift per campaign", ("campaign_uplift",),
           "Every treatment variant against the holdout, all send days pooled; Newcombe 95 % interval."),
    Figure("revenue_by_arm", "Revenue per member by arm", ("campaign_daily",),
           "Revenue within the attribution window per audience member of each arm (the holdout receives "
           "nothing, so this is per member, not per recipient)."),
    Figure("ab_variants", "A/B variants", ("campaign_uplift",),
           "Probability that each variant has the highest conversion rate of its campaign."),
    Figure("rfm_sizes", "RFM segment sizes over time", ("rfm_segments",), "Customers per segment per snapshot."),
    Figure("migration_matrix", "RFM segment migration", ("segment_migration",),
           "Customers moving between segments since the previous snapshot (latest snapshot)."),
    Figure("engagement_trend", "Engagement by send day", ("campaign_daily",),
           "Treatment arm, all campaigns: human opens and clicks over delivered, conversions over members."),
    Figure("data_quality_trend", "Data-quality results", ("data_quality",),
           "Expectations per validation run date: passed, failed, failed critical."),
    Figure("calibration", "Lead score calibration", ("model_metrics",),
           "Latest lead-score version, validation deciles: mean predicted score against the observed rate."),
    Figure("clv_distribution", "CLV distribution", ("clv_predictions",),
           "Expected revenue per customer at the latest CLV as-of date."),
    Figure("exclusions_by_reason", "Exclusions by reason", ("campaign_exclusions",),
           "Contacts left out of each campaign's latest run, by reason (a contact can count under two)."),
)


def _env() -> Any:
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def render(template: str, **context: Any) -> str:
    return str(_env().get_template(template).render(**context))


def build_report(engine: Any, run_date: dt.date, *, data_docs_href: str | None = None) -> str:
    """The report's HTML for ``run_date`` (data before that date, as in the KPI tables); the data-quality
    figure links the Great Expectations Data Docs at ``data_docs_href`` when given."""
    from martech.kpis.report import figures, queries

    started = time.perf_counter()
    with engine.connect() as conn:
        cache: dict[str, Any] = {}
        for name in {n for f in FIGURES for n in f.loads}:
            cache[name] = queries.load(conn, name, run_date)
        goals = queries.load(conn, "campaign_goals", run_date)
        send_time = queries.load(conn, "send_time_comparison", run_date)
    sections = []
    for fig in FIGURES:
        data = getattr(queries, fig.key)(*(cache[n] for n in fig.loads))
        sources = sorted({t for n in fig.loads for t in queries.SOURCES[n]})
        sections.append({"key": fig.key, "title": fig.title, "note": fig.note, "sources": sources,
                         "svg": figures.DRAW[fig.key](data)})
    return render("report.html.j2", run_date=run_date, sections=sections, data_docs_href=data_docs_href,
                  goals=goals.astype(object).where(goals.notna(), None).to_dict("records"),
                  send_time=send_time.astype(object).where(send_time.notna(), None).to_dict("records"),
                  seconds=round(time.perf_counter() - started, 2))


_DOCS_LINK = re.compile(r'(<a data-link="data-docs" href=")[^"]*(")')


def with_data_docs_href(page: str, href: str) -> str:
    """The report ``page`` with its Data Docs link pointing at ``href`` (the app serves them elsewhere)."""
    return _DOCS_LINK.sub(lambda m: m.group(1) + html.escape(href) + m.group(2), page)


def _data_docs_href(report_file: Path) -> str | None:
    """The Data Docs index relative to the report file (both under MARTECH_HOME unless configured apart);
    None while there are none (``MARTECH_DATA_DOCS=0``, or no gate has run)."""
    from martech import paths

    index = paths.data_docs_dir().resolve() / "index.html"
    if not index.is_file():
        return None
    try:
        rel = os.path.relpath(index, report_file.resolve().parent)
    except ValueError:  # another drive
        return index.as_uri()
    return urllib.parse.quote(Path(rel).as_posix())


def report_path() -> Path:
    """Where the ``kpis`` DAG keeps the latest report (``MARTECH_HOME/reports/report.html``)."""
    from martech import paths

    return paths.home() / "reports" / "report.html"


def write_report(engine: Any, run_date: dt.date, path: Path | None = None) -> Path:
    """Render the report and write it atomically to ``path`` (default ``report_path()``); returns its absolute path
    (``martech report --open`` hands it to the browser as a file URL)."""
    path = Path(path or report_path()).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(build_report(engine, run_date, data_docs_href=_data_docs_href(path)), encoding="utf-8")
    tmp.replace(path)
    return path


def campaign_page(engine: Any, campaign_id: str, previews: list[dict[str, str]], *, base: str = "") -> str:
    """One campaign's page: runs, audience per arm and variant, exclusions, sends, uplift, previews."""
    from martech.kpis.report import campaign

    return render("campaign.html.j2", base=base, previews=previews, **campaign.tables(engine, campaign_id))
