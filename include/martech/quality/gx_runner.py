"""Great Expectations behind one call: validate frames against declared specs, and render Data Docs.

:func:`run_suites` validates each (table, part) against its :class:`ExpectationSpec` list in one
ephemeral GX context and turns GX's answers into :class:`ExpectationResult` rows of the report. A part
is a pandas frame, or :class:`SqlRows`: a SELECT that GX runs in PostgreSQL (its SQL data source), so
that only counts and the sample of unexpected values come back to Python, however many rows there are;
:func:`validate_frames` is the entry for gates on data that is not a raw table (staging, the audience
snapshot). ``great_expectations`` is imported here and only inside these functions: importing it costs
~10 s, so never import it at DAG-parse time, and validate all tables in one call.

Every validation also renders GX Data Docs into :func:`martech.paths.data_docs_dir` (``index.html``);
:func:`build_data_docs` is the one place that does, and it never fails the gate. ``MARTECH_DATA_DOCS=0``
validates without rendering.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from martech.quality.expectations import ExpectationSpec, postgres_regex
from martech.quality.results import RESULTS_TABLE, ExpectationResult, QualityReport, percent

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("martech.quality.gx_runner")

SAMPLE_SIZE = 5
DATA_DOCS_ENV = "MARTECH_DATA_DOCS"  # "0" / "off": validate without rendering Data Docs
DATA_DOCS_KEEP = 500  # validation results kept behind the Data Docs (the oldest are pruned)
DATA_DOCS_INDEX_LIMIT = 200  # validation runs listed on index.html, newest first


@dataclass(frozen=True)
class SqlRows:
    """Rows that stay in PostgreSQL: GX validates the result of ``query`` (a SELECT) on the database at
    ``url`` (with its password) through its SQL data source; the query's columns are the part's columns."""

    url: str
    query: str


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a GX value (NaN → None, tuples → lists, numpy scalars → Python)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)):
        return value
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _plain(item())
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value)


def _sample(values: Iterable[Any], size: int = SAMPLE_SIZE) -> list[Any]:
    """The first ``size`` distinct values, in order."""
    out: list[Any] = []
    seen: set[str] = set()
    for v in values:
        key = json.dumps(v, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(v)
            if len(out) == size:
                break
    return out


def _observed(spec: ExpectationSpec, res: Mapping[str, Any], threshold: float | None) -> str:
    unexpected = res.get("unexpected_count")
    noun = "batches" if spec.on == "batches" else "rows"
    if unexpected is not None:
        total = int(res.get("element_count") or 0)
        missing = int(res.get("missing_count") or 0)
        pct = res.get("unexpected_percent")
        text = f"{int(unexpected):,} of {total:,} {noun} unexpected"
        if pct is not None and total:
            base = f" of {total - missing:,} non-null" if missing and spec.expectation != (
                "expect_column_values_to_not_be_null") else ""
            text += f" ({float(pct):.2f}%{base})"
        if threshold is not None:
            text += f", at most {percent(threshold)} tolerated"
        return text
    details = (res.get("details") or {}).get("mismatched") if isinstance(res.get("details"), Mapping) else None
    if spec.expectation == "expect_table_columns_to_match_set" and isinstance(details, Mapping):
        missing_cols = ", ".join(details.get("missing") or []) or "none"
        extra_cols = ", ".join(details.get("unexpected") or []) or "none"
        return f"columns missing: {missing_cols}; unexpected: {extra_cols}"
    if spec.expectation == "expect_table_columns_to_match_set":
        return f"{len(res.get('observed_value') or [])} columns as declared"
    value = _plain(res.get("observed_value"))
    if spec.on == "batches" and spec.column == "updated_at":
        return ("no dated row in the run's batches" if value is None
                else f"newest updated_at {value} days before the run's cutoff")
    return str(value)


def _to_result(table: str, spec: ExpectationSpec, gx_result: Any) -> ExpectationResult:
    res = dict(gx_result.result or {})
    exc = gx_result.exception_info or {}
    if isinstance(exc, Mapping) and "raised_exception" not in exc:  # keyed per metric in some versions
        exc = next((v for v in exc.values() if isinstance(v, Mapping) and v.get("raised_exception")), {})
    raised = bool(exc.get("raised_exception")) if isinstance(exc, Mapping) else False
    unexpected = res.get("unexpected_count")
    sample = _sample(_plain(res.get("partial_unexpected_list") or []))
    mostly = spec.gx_kwargs().get("mostly")
    threshold = None if mostly is None or float(mostly) >= 1 else round(1.0 - float(mostly), 9)
    success, critical = bool(gx_result.success) and not raised, spec.critical
    if success and unexpected:
        # GX passed it (under ``mostly``, or a warning spec); bad rows exist all the same: a warning.
        success, critical = False, False
    observed = (f"could not be evaluated: {exc.get('exception_message')}" if raised
                else _observed(spec, res, threshold))
    return ExpectationResult(
        table=table, expectation=spec.expectation, column=spec.column,
        kwargs=_plain(spec.gx_kwargs()), success=success, critical=critical,
        unexpected_count=None if unexpected is None else int(unexpected),
        unexpected_sample=sample, observed=observed, fix=spec.fix, max_bad_share=threshold,
        handled=spec.handled,
    )


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def validate_frames(frames: Mapping[str, pd.DataFrame], declared: Mapping[str, Sequence[ExpectationSpec]],
                    run_id: str, run_date: dt.date) -> QualityReport:
    """Validate DataFrames (table name → rows) against declared expectations in one GX context.

    For checks on data that is not a raw table (the staging gate and the campaign snapshot gate use it):
    no threshold applies, every unexpected row of a critical spec fails it. Record the report with
    :func:`martech.quality.results.record_results` and gate with :func:`~martech.quality.results.check`.
    """
    import time

    t0 = time.perf_counter()
    report = QualityReport(run_id=run_id, results=[], rows={t: len(f) for t, f in frames.items()},
                           run_date=run_date)
    if frames:
        run_suites(declared, {(t, "rows"): f for t, f in frames.items()}, report)
    report.seconds = time.perf_counter() - t0
    return report


def suite_name(table: str, on: str, run_id: str) -> str:
    """The GX suite (and Data Docs page) name: the table, the run's scope (e.g. the campaign), the part."""
    scope = run_id.split(":")[1:-1]  # "audience:<campaign>:<run>" → the campaign; "raw:<date>" → none
    name = f"{table}@{'.'.join(scope)}" if scope else table
    return f"{name} batches" if on == "batches" else name


def _docs_enabled() -> bool:
    return os.environ.get(DATA_DOCS_ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def _gx_context(docs: bool) -> Any:
    """An ephemeral GX context; with ``docs``, its suites and results are kept as JSON under
    MARTECH_HOME and rendered into the Data Docs folder, so that every run adds to the same site."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    from martech import paths

    if not docs:
        context = gx.get_context(mode="ephemeral")
    else:
        store = paths.quality_store_dir()

        def files(sub: str) -> dict[str, Any]:
            return {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(store / sub)}

        memory = {"class_name": "InMemoryStoreBackend"}
        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(),
            stores={
                "expectations_store": {"class_name": "ExpectationsStore", "store_backend": files("expectations")},
                "validation_results_store": {"class_name": "ValidationResultsStore",
                                             "store_backend": files("validations")},
                "checkpoint_store": {"class_name": "CheckpointStore", "store_backend": memory},
                "validation_definition_store": {"class_name": "ValidationDefinitionStore",
                                                "store_backend": memory},
            },
            data_docs_sites={"martech": {
                "class_name": "SiteBuilder", "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(paths.data_docs_dir())},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                       "validation_results_limit": DATA_DOCS_INDEX_LIMIT},
            }},
            analytics_enabled=False,
        )
        context = gx.get_context(project_config=config, mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def _gx_kwargs(spec: ExpectationSpec, in_sql: bool) -> dict[str, Any]:
    """The spec's arguments as GX gets them; a regex GX runs in PostgreSQL is written in its dialect."""
    kwargs = spec.gx_kwargs()
    if in_sql and isinstance(kwargs.get("regex"), str):
        kwargs["regex"] = postgres_regex(kwargs["regex"])
    return kwargs


def _batch_definition(context: Any, databases: dict[str, Any], name: str, frame: pd.DataFrame | SqlRows
                      ) -> tuple[Any, dict[str, Any] | None]:
    """The GX batch of one part, and its batch parameters: the frame, or the query on its database's
    SQL data source (added on first use; ``databases[""]`` is the pandas one)."""
    import sqlalchemy as sa

    if not isinstance(frame, SqlRows):
        asset = databases[""].add_dataframe_asset(name=name)
        return asset.add_batch_definition_whole_dataframe("rows"), {"dataframe": frame}
    if frame.url not in databases:
        # GX learns the columns of a query by running it and reading the result, which would bring every
        # row of the batch into this process; of a table it reads the catalogue. So GX materialises each
        # query as a temporary table first, on the one connection it keeps (temporary tables live in
        # their session). Without synchronised scans a scan starts at the first page: the unexpected
        # values shown are the first ones landed, the same on every run.
        databases[frame.url] = context.data_sources.add_postgres(
            name=f"martech_sql_{len(databases)}", connection_string=frame.url, create_temp_table=True,
            kwargs={"poolclass": sa.pool.StaticPool,
                    "connect_args": {"options": "-c synchronize_seqscans=off"}})
    asset = databases[frame.url].add_query_asset(name=name, query=frame.query)
    return asset.add_batch_definition_whole_table("rows"), None


def run_suites(declared: Mapping[str, Sequence[ExpectationSpec]],
               frames: Mapping[tuple[str, str], pd.DataFrame | SqlRows], report: QualityReport) -> None:
    """Validate each (table, part) against its specs; fill ``report`` with results (and Data Docs).

    A part is a frame (validated in pandas) or :class:`SqlRows` (validated in PostgreSQL).
    """
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.expectations.metadata_types import FailureSeverity

    docs = _docs_enabled()
    context = _gx_context(docs)
    databases: dict[str, Any] = {"": context.data_sources.add_pandas(name="martech")}  # url → data source
    run_date = report.run_date or dt.date(1970, 1, 1)
    # A fixed run time per run date: a rerun of the date overwrites its pages instead of adding some.
    run = RunIdentifier(run_name=report.run_id,
                        run_time=dt.datetime.combine(run_date, dt.time(0), tzinfo=dt.timezone.utc))
    suites_run: list[str] = []
    try:
        for (table, on), frame in frames.items():
            specs = [s for s in declared[table] if s.on == on]
            if not specs:
                continue
            name = suite_name(table, on, report.run_id)
            suite = gx.ExpectationSuite(name=name, meta={"martech_run": report.run_id})
            for k, spec in enumerate(specs):
                cls = getattr(gxe, _camel(spec.expectation), None)
                if cls is None:
                    raise ValueError(f"{table}: unknown Great Expectations expectation {spec.expectation!r}")
                severity = FailureSeverity.CRITICAL if spec.critical else FailureSeverity.WARNING
                suite.add_expectation(cls(**_gx_kwargs(spec, isinstance(frame, SqlRows)), meta={"martech_spec": k},
                                          notes=spec.fix or None, severity=severity))
            suite = context.suites.add_or_update(suite)
            batch_definition, parameters = _batch_definition(context, databases, name, frame)
            definition = context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=name, data=batch_definition, suite=suite))
            validation = definition.run(batch_parameters=parameters, run_id=run, result_format={
                "result_format": "SUMMARY", "partial_unexpected_count": 20})
            suites_run.append(name)
            # GX does not keep the suite's order: match each result back to its spec by the index in meta.
            by_spec = {}
            for res in validation.results:
                config = res.expectation_config
                if config is None or not config.meta or "martech_spec" not in config.meta:
                    raise RuntimeError(f"{table}: GX returned a result without its expectation")
                by_spec[int(config.meta["martech_spec"])] = res
            if sorted(by_spec) != list(range(len(specs))):
                raise RuntimeError(f"{table}: GX returned results for specs {sorted(by_spec)} of {len(specs)}")
            report.results += [_to_result(table, spec, by_spec[k]) for k, spec in enumerate(specs)]
    finally:
        for url, database in databases.items():  # GX's engines would keep their connections open
            if url:
                database.get_engine().dispose()
    if docs and suites_run:
        build_data_docs(context, report, suites_run)


def build_data_docs(context: Any, report: QualityReport, suite_names: list[str]) -> None:
    """Render this run's pages and the index. Never fails the gate: the docs are a view of the results."""
    import fcntl
    import time

    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    from martech import paths
    from martech.quality import docs_offline

    t0 = time.perf_counter()
    try:
        store = context.validation_results_store
        keys = store.list_keys()
        if len(keys) > DATA_DOCS_KEEP:
            for key in sorted(keys, key=lambda k: (k.run_id.run_time, k.run_id.run_name))[:-DATA_DOCS_KEEP]:
                store.remove_key(key)
        mine = [k for k in store.list_keys()
                if k.run_id.run_name == report.run_id and k.expectation_suite_identifier.name in suite_names]
        targets = [*mine, *(ExpectationSuiteIdentifier(name=n) for n in suite_names)]
        paths.quality_store_dir().mkdir(parents=True, exist_ok=True)
        # Parallel validations (several campaign gates) share the site: one index write at a time.
        with open(paths.quality_store_dir() / ".docs.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            built = context.build_data_docs(resource_identifiers=targets)
            docs_offline.make_offline(paths.data_docs_dir())  # GX's pages load CDN assets: rewrite them
        report.data_docs = str(built.get("martech") or paths.data_docs_dir() / "index.html")
    except Exception as exc:  # the gate's outcome must not depend on rendering
        log.warning("data quality: Data Docs were not built (%s: %s); results are in %s",
                    type(exc).__name__, exc, RESULTS_TABLE)
    report.docs_seconds = time.perf_counter() - t0
    log.info("data quality: Data Docs %s in %.2f s", report.data_docs, report.docs_seconds)
