"""What every martech DAG shares: default arguments, the assets that chain the stages, how a task
finds its warehouse and its run date, and which errors are worth a retry.

Only this module and ``dags/`` know about Airflow; the rest of the package is plain Python. It is
imported at DAG parse time, so it imports nothing heavy and touches no database or connection at
module level.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, Param

if TYPE_CHECKING:
    from martech.warehouse import Warehouse

OWNER = "data-team"
WAREHOUSE_CONN_ID = "warehouse"
SHOP_CONN_ID = "shop_db"
# Early, so that a run for a historical date (a replayed export, e.g. 1997 for CDNOW) runs its tasks;
# catchup is off everywhere, so the scheduler never backfills from it.
START_DATE = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=5),
    "retry_exponential_backoff": True,
}

# The outlet of each stage sits on the task that checked or built the data, so downstream DAGs only
# ever start on checked data.
RAW_CHECKED = Asset("martech://warehouse/raw", extra={"checked_by": "validate_raw"})
STAGING = Asset("martech://warehouse/staging")
MARTS = Asset("martech://warehouse/marts")
SENDS = Asset("martech://warehouse/campaigns/send_ledger")
EMAIL_EVENTS = Asset("martech://warehouse/staging/email_events")
KPIS = Asset("martech://warehouse/kpis")

# SQLSTATEs a later try can get past: 40 transaction rollback (serialization failure, deadlock),
# 08 connection, 53 insufficient resources, 55P03 lock not available (lock_timeout), 57014 statement
# timeout, 57P01-57P03 server shutting down or starting.
_TRANSIENT_SQLSTATE_PREFIXES = ("40", "08", "53", "55P03", "57014", "57P0")
# Errors of the package that mean "someone else holds it right now".
_TRANSIENT_NAMES = frozenset({"ConcurrentPullError", "DispatchInProgressError"})


def is_transient(exc: BaseException) -> bool:
    """Whether a retry may succeed: network trouble, a 5xx or 429, a lock timeout, a serialization
    failure, a deadlock, a lost connection. Anything else (a contract, spec, config or quality-gate
    error, a bug) fails the same way on every try.

    Looks through the exception's causes, and through SQLAlchemy's wrapper to the driver's error.
    """
    import http.client
    import socket
    import urllib.error

    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        code = getattr(err, "pgcode", None)
        if code:
            if str(code).startswith(_TRANSIENT_SQLSTATE_PREFIXES):
                return True
            # XX000 for two sessions updating one catalog row at once (e.g. ALTER ROLE of the
            # cluster-wide analyst role from two warehouses on one server): the next try finds it done.
            if str(code) == "XX000" and "tuple concurrently updated" in str(err):
                return True
        elif type(err).__name__ == "OperationalError" and type(err).__module__.startswith("psycopg"):
            return True  # no SQLSTATE: the connection failed or was lost
        if isinstance(err, urllib.error.HTTPError):
            if err.code == 429 or err.code >= 500:
                return True
        elif isinstance(err, (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError,
                              http.client.HTTPException)):
            return True
        if type(err).__name__ in _TRANSIENT_NAMES:
            return True
        if type(err).__name__ == "ApiError":  # an API client's error: retries ran out, or 5xx / 429
            status = getattr(err, "status", None)
            if status is None or status == 429 or status >= 500:
                return True
        todo.extend([getattr(err, "orig", None), err.__cause__, err.__context__])
    return False


def fail_fast(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Let only transient errors reach Airflow's retries; any other error fails the task at once
    (AirflowFailException with the error's own message, the original chained for the traceback)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if type(exc).__module__.startswith("airflow") or is_transient(exc):
                raise  # Airflow's own signals (skip, fail, defer) and what a retry may fix
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(exc).__name__}: {exc} (not retried: a retry would fail "
                                       "the same way)") from exc

    run.fails_fast = True  # type: ignore[attr-defined]
    return run


def task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """``airflow.sdk.task`` for martech DAGs: the same arguments, with the fail-fast rule applied."""
    from airflow.sdk import task as airflow_task

    if python_callable is not None:
        return airflow_task(fail_fast(python_callable), **kwargs)
    return lambda fn: airflow_task(fail_fast(fn), **kwargs)


RUN_PARAMS = {
    "run_date": Param(None, type=["null", "string"], format="date",
                      description="Run date (YYYY-MM-DD); defaults to the logical date or the "
                                  "triggering asset event's run date"),
}
# Campaign DAGs also take a dry run switch: render and record "would send", send nothing.
CAMPAIGN_PARAMS = {
    **RUN_PARAMS,
    "dry_run": Param(False, type="boolean",
                     description="Render every message and record it in campaigns.dry_runs without sending"),
}


def warehouse_url() -> str:
    """The Airflow connection ``warehouse`` if defined, else MARTECH_WAREHOUSE_URL, else embedded."""
    from martech.warehouse import resolve_url

    if not os.environ.get("MARTECH_WAREHOUSE_URL"):
        try:
            from airflow.sdk import Connection

            return str(Connection.get(WAREHOUSE_CONN_ID).get_uri())
        except Exception:
            pass
    return resolve_url()


def warehouse(**settings: Any) -> Warehouse:
    """The warehouse a task hands to the library, opened once: ``with dagkit.warehouse() as wh: ...``.

    ``settings``: what the task's stage reads besides the warehouse (``shop_url``, ``transport_settings``).
    """
    from martech.warehouse import Warehouse

    return Warehouse(warehouse_url(), **settings)


def shop_url() -> str | None:
    """The shop database: Airflow connection ``shop_db``, else MARTECH_SHOP_URL, else the warehouse."""
    url = os.environ.get("MARTECH_SHOP_URL")
    if url:
        return url
    try:
        from airflow.sdk import Connection

        return str(Connection.get(SHOP_CONN_ID).get_uri())
    except Exception:
        return None


def transport_settings() -> dict[str, Any]:
    """MARTECH_TRANSPORT plus the settings of its Airflow connection (``sendgrid`` or ``smtp``), if any."""
    name = os.environ.get("MARTECH_TRANSPORT", "outbox")
    if name not in ("sendgrid", "smtp"):
        return {"name": name}
    try:
        from airflow.sdk import Connection

        conn = Connection.get(name)
    except Exception:
        return {"name": name}  # no connection: the environment variables apply
    extra = conn.extra_dejson or {}
    if name == "sendgrid":
        host = f"{conn.schema or 'https'}://{conn.host}" if conn.host else None
        return {"name": name, "api_key": conn.password, "host": host, **extra}
    return {"name": name, "host": conn.host, "port": conn.port, "username": conn.login,
            "password": conn.password, "security": extra.get("security", "starttls" if conn.port == 587 else "none")}


def files_root() -> Any:
    """Where the export files are, as Airflow's ObjectStoragePath when the files source names a connection.

    ``conn_id`` in the ``files`` source of sources.yml gives the object store its credentials (e.g. an
    ``aws_default`` connection for ``s3://``); without one, the library resolves the URL itself.
    """
    from martech.ingest.sources import of_kind

    for _name, source in of_kind("files"):
        if source.path and source.conn_id:
            from airflow.sdk import ObjectStoragePath

            return ObjectStoragePath(source.path, conn_id=source.conn_id)
    return None


def run_date_of(context: Mapping[str, Any]) -> dt.date:
    """The date a run works for: an explicit param, the upstream run's date, or the logical date."""
    params = context.get("params") or {}
    if params.get("run_date"):
        return dt.date.fromisoformat(str(params["run_date"]))
    dates = []
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            value = (getattr(event, "extra", None) or {}).get("run_date")
            if value:
                dates.append(dt.date.fromisoformat(str(value)))
    if dates:
        return max(dates)
    when = context.get("logical_date") or context["dag_run"].run_after
    return when.date()


def run_of(context: Mapping[str, Any], *, hourly: bool = False) -> Any:
    """The :class:`martech.runs.Run` a task works for: its hour (an hourly series) or its run date."""
    from martech.runs import Run

    return Run.hour(run_hour_of(context)) if hourly else Run.daily(run_date_of(context))


def run_time_of(context: Mapping[str, Any]) -> dt.datetime:
    """The run's timestamp (logical date, or when it was due), used instead of the wall clock."""
    when = context.get("logical_date") or context["dag_run"].run_after
    return when


def dry_run_of(context: Mapping[str, Any]) -> bool:
    """Whether the run was triggered with ``dry_run`` (render and record, send nothing)."""
    return bool((context.get("params") or {}).get("dry_run"))


def campaign_step(context: Mapping[str, Any], name: str, campaign_id: str, *args: Any, hourly: bool,
                  sends: bool = True) -> Any:
    """A campaign task body: ``martech.campaigns.runner.<name>(warehouse, campaign_id, run[, now], *args)``.

    ``sends``: the step sends or renders mail, so it gets the transport's settings and the run's timestamp.
    """
    from martech.campaigns import runner

    settings = {"transport_settings": transport_settings()} if sends else {}
    with warehouse(**settings) as wh:
        timed = (run_time_of(context),) if sends else ()
        return getattr(runner, name)(wh, campaign_id, run_of(context, hourly=hourly), *timed, *args)


def publish(context: Mapping[str, Any], asset: Asset, summary: Mapping[str, Any]) -> None:
    """Attach the run date and row counts to the asset event this task emits."""
    extra = {"run_date": summary.get("run_date")}
    if "rows" in summary:
        extra["rows"] = summary["rows"]
    context["outlet_events"][asset].extra = extra


def run_step(context: Mapping[str, Any], step: Callable[..., Any], *args: Any, publish_to: Asset | None = None,
             settings: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """A task body: ``step(warehouse, run_date, *args, **kwargs)`` for the task's run, the warehouse opened
    once for the call (``settings``: what the stage reads besides it, see :func:`warehouse`).

    With ``publish_to`` the summary also becomes that asset's event metadata (:func:`publish`).
    """
    with warehouse(**(settings or {})) as wh:
        summary = step(wh, run_date_of(context), *args, **kwargs)
    if publish_to is not None:
        publish(context, publish_to, summary)
    return summary


def saas_credentials(conn_id: str) -> dict[str, Any]:
    """Token and host of a SaaS API's Airflow connection (``hubspot``, ``shopify``); call inside a task only.

    The token is the connection's password, else its extra ``token`` / ``access_token``; without a
    connection, ``MARTECH_<CONN_ID>_TOKEN``. Never logged.
    """
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return {"token": os.environ.get(f"MARTECH_{conn_id.upper()}_TOKEN"), "host": None}
    extra = conn.extra_dejson or {}
    return {"token": conn.password or extra.get("token") or extra.get("access_token"), "host": conn.host or None}


# Hourly campaigns (series on an hourly schedule) also take the run's instant.
HOURLY_CAMPAIGN_PARAMS = {
    **CAMPAIGN_PARAMS,
    "run_ts": Param(None, type=["null", "string"], format="date-time",
                    description="The hour the run stands for (ISO 8601, e.g. 2026-11-02T13:00:00+00:00); "
                                "defaults to the logical date truncated to the hour"),
}


def run_hour_of(context: Mapping[str, Any]) -> dt.datetime:
    """The hour an hourly run stands for (UTC, minutes dropped).

    An explicit ``run_ts`` param; else the logical date (or when the run was due), unless a ``run_date``
    param names another day, which then means that day's 00:00 run.
    """
    params = context.get("params") or {}
    if params.get("run_ts"):
        when = dt.datetime.fromisoformat(str(params["run_ts"]).replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
    else:
        when = context.get("logical_date") or context["dag_run"].run_after
        if params.get("run_date"):
            day = dt.date.fromisoformat(str(params["run_date"]))
            if when.astimezone(dt.timezone.utc).date() != day:
                when = dt.datetime.combine(day, dt.time(0), tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
