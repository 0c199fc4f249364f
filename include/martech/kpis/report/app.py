"""The report's web app, mounted in the Airflow API server by ``plugins/martech_report.py``: the report,
a page per campaign, the outbox's previews and the Great Expectations Data Docs.

Airflow does not authenticate plugin apps, so every route depends on ``user``: the API server's own
``get_user`` (the JWT from the UI's session cookie or an ``Authorization: Bearer`` header), which refuses
an anonymous request with 401. The plugin passes it in, so this module never imports Airflow.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["PREFIX", "create_app"]

PREFIX = "/martech"
_CAMPAIGN_DAG_PREFIX = "campaign_"


@functools.cache
def _engine() -> Any:
    from martech.db import make_engine
    from martech.warehouse import resolve_url

    return make_engine(resolve_url())


def create_app(*, user: Callable[..., Any], engine: Callable[[], Any] = _engine,
               report_file: Callable[[], Path] | None = None, previews_dir: Callable[[], Path] | None = None,
               data_docs_dir: Callable[[], Path] | None = None) -> Any:
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import HTMLResponse, RedirectResponse, Response

    from martech import paths
    from martech.kpis import report
    from martech.kpis.report import data_docs, previews

    report_file = report_file or report.report_path
    previews_dir = previews_dir or (lambda: paths.outbox_dir() / "previews")
    data_docs_dir = data_docs_dir or paths.data_docs_dir
    docs_href = f"{PREFIX}/data-docs/index.html"
    app = FastAPI(title="martech report", dependencies=[Depends(user)],
                  docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/report")

    @app.get("/report", response_class=HTMLResponse)
    def daily_report() -> HTMLResponse:
        """The report the ``kpis`` DAG wrote last; rendered now when it has not run yet."""
        path = report_file()
        if path.is_file():
            # The file links the Data Docs relative to itself; here they are served by this app.
            return HTMLResponse(report.with_data_docs_href(path.read_text(encoding="utf-8"), docs_href))
        tomorrow = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
        return HTMLResponse(report.build_report(engine(), tomorrow, data_docs_href=docs_href))

    @app.get("/campaigns/{dag_id}", response_class=HTMLResponse)
    def campaign(dag_id: str) -> HTMLResponse:
        """A campaign's page, at its DAG's id (``campaign_<id>``): the tab Airflow shows on every DAG."""
        if not dag_id.startswith(_CAMPAIGN_DAG_PREFIX):
            return HTMLResponse("<!doctype html><p>Not a campaign DAG: campaign pages are on the campaign_&lt;id&gt;"
                                " DAGs.</p>", status_code=404)
        campaign_id = dag_id.removeprefix(_CAMPAIGN_DAG_PREFIX)
        found = previews.list_previews(previews_dir(), campaign_id)
        return HTMLResponse(report.campaign_page(engine(), campaign_id, found, base=PREFIX))

    @app.get("/previews/{campaign_id}/{run_id}/{name}", response_class=HTMLResponse)
    def preview(campaign_id: str, run_id: str, name: str) -> HTMLResponse:
        body = previews.preview_html(previews_dir(), campaign_id, run_id, name)
        if body is None:
            raise HTTPException(status_code=404, detail="no such preview")
        return HTMLResponse(body, headers=previews.HEADERS)

    @app.get("/data-docs", include_in_schema=False)
    @app.get("/data-docs/", include_in_schema=False)
    def data_docs_index() -> RedirectResponse:
        return RedirectResponse(docs_href)

    @app.get("/data-docs/{path:path}")
    def data_docs_file(path: str) -> Response:
        """The Great Expectations Data Docs: only files inside their folder, nothing loaded from elsewhere."""
        found = data_docs.read(data_docs_dir(), path)
        if found is None:
            if path == "index.html":
                return HTMLResponse("<!doctype html><p>No Data Docs yet: the validate tasks of the ingest, staging"
                                    " and campaign DAGs build them.</p>", status_code=404)
            raise HTTPException(status_code=404, detail="no such file in the Data Docs")
        body, media_type = found
        return Response(body, media_type=media_type, headers=data_docs.HEADERS)

    return app
