"""The martech report in the Airflow UI: the daily KPI report in the navigation, a campaign page on each DAG.

The app lives in ``martech.kpis.report.app`` (authenticated through the API server's own user dependency);
this file only registers it. See docs/report.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin

from martech.kpis.report.app import PREFIX, create_app


class MartechReportPlugin(AirflowPlugin):
    name = "martech_report"
    fastapi_apps: ClassVar[list[Any]] = [
        {"app": create_app(user=get_user), "url_prefix": PREFIX, "name": "martech report"}]
    external_views: ClassVar[list[Any]] = [
        {"name": "Marketing report", "href": f"{PREFIX}/report", "destination": "nav", "category": "browse",
         "url_route": "martech-report"},
        {"name": "Campaign", "href": f"{PREFIX}/campaigns/{{DAG_ID}}", "destination": "dag",
         "url_route": "martech-campaign"},
    ]
