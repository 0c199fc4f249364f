"""The chain benchmark's arithmetic: fitted exponents, the per-scale summary and its table."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from martech.devtools import bench_chain as bc


def test_fitted_exponent_recovers_the_power_of_a_cost_curve():
    assert bc._fit_exponent([(n, 3.0 * n ** 1.0) for n in (1e5, 3e5, 1e6)]) == pytest.approx(1.0)
    assert bc._fit_exponent([(n, 0.5 * n ** 1.3) for n in (1e5, 3e5, 1e6)]) == pytest.approx(1.3)
    assert bc._fit_exponent([(100_000, 5.0)]) is None


def _stage(day, stage, wall, cpu, py_mb=100.0, pg_mb=50.0):
    return {"day": day, "stage": stage, "wall_s": wall, "python_cpu_s": cpu, "python_peak_mb": py_mb,
            "pg_cpu_s": cpu / 2, "pg_peak_mb": pg_mb, "cpu_s": cpu * 1.5, "extra": {}}


def _scale(n):
    k = n / 100_000
    return {"customers": n, "simulate": {"wall_s": 10 * k}, "responses_s": 2 * k,
            "stages": [_stage("day1", "ingest", 20 * k, 10 * k), _stage("day1", "staging", 40 * k, 30 * k, 900),
                       _stage("day2", "ingest", 4 * k, 2 * k)],
            "reference": {"copy": {"rows": 1_000_000 * k, "copy_wall_s": 10 * k},
                          "rfm": {"ratio": 0.7}}}


def test_summary_reports_each_target_and_the_table_lists_every_stage():
    scales = [_scale(100_000), _scale(300_000)]
    summary = bc.summarise(scales)
    first = summary["scales"][100_000]
    assert first["day1_wall_s"] == 60 and first["day2_wall_s"] == 4
    assert first["next_day_share"] == pytest.approx(4 / 60)
    assert first["load_vs_copy"] == pytest.approx(0.5)      # COPY 10 s against ingest 20 s
    assert first["ingest_rows_per_s"] == pytest.approx(50_000)
    assert first["peak_mb"] == 950
    assert summary["exponents"]["day1 staging"] == pytest.approx(1.0)
    table = bc.markdown(scales, summary)
    for row in ("| day1 ingest |", "| day1 staging |", "| day2 ingest |", "| loading / COPY speed |",
                "| next day / full day |"):
        assert row in table
    assert "40.0 / 45.0 / 900 + 50" in table


def test_postgres_meter_counts_cpu_of_exited_children_of_the_process_it_watches():
    # The meter reads a parent's own and reaped children's CPU from /proc: a busy child that has exited
    # still counts, the way a finished backend counts for the postmaster.
    meter = bc.PostgresMeter(os.getpid())
    before = meter.cpu_s()
    subprocess.run([sys.executable, "-c", "import time\nt=time.process_time()\nwhile time.process_time()-t<0.5: pass"],
                   check=True)
    time.sleep(0.05)
    assert meter.cpu_s() - before >= 0.4
    with meter:
        time.sleep(0.6)
    assert meter.peak_kb > 0


def test_a_stage_reports_its_own_peak_not_its_large_parents():
    # ru_maxrss survives fork and exec on Linux; VmHWM starts again with the new program.
    parent_ballast = bytearray(400 * 1024 * 1024)
    parent_ballast[::4096] = b"x" * len(parent_ballast[::4096])
    out = subprocess.run([sys.executable, "-c", "from martech.devtools.bench_chain import _own_peak_kb;"
                          " print(_own_peak_kb())"], check=True, capture_output=True, text=True).stdout
    assert int(out) < 300 * 1024
    del parent_ballast


def test_summary_reports_the_landing_itself_orders_staging_beside_duckdb_and_requests_per_1000():
    sc = _scale(100_000)
    # The ingest stage took 20 s, its landing 12.5 s of it for the same 1M rows plain COPY moved in 10 s.
    sc["stages"][0]["extra"] = {"landing": {"rows": 1_000_000, "wall_s": 12.5, "cpu_s": 0.1, "pg_cpu_s": 11.0}}
    sc["stages"][1]["extra"] = {"model_seconds": {"staging.orders": 6.0, "staging.customers": 2.0}}
    sc["reference"]["orders_staging"] = {"duckdb_s": 0.5, "pg_query_s": 2.0}
    sc["reference"]["dispatch"] = {"recipients": 4321, "requests_per_1000": 2.3}
    summary = bc.summarise([sc, _scale(300_000)])
    first, other = summary["scales"][100_000], summary["scales"][300_000]
    assert first["loading_rows_per_s"] == pytest.approx(80_000)
    assert first["loading_vs_copy"] == pytest.approx(0.8)      # 80k rows/s against COPY's 100k rows/s
    assert first["load_vs_copy"] == pytest.approx(0.5)         # the whole stage, as before
    assert first["orders_staging_pg_vs_duckdb"] == pytest.approx(12.0)
    assert first["requests_per_1000"] == pytest.approx(2.3)
    assert other["loading_vs_copy"] is None and other["requests_per_1000"] is None
    table = bc.markdown([sc, _scale(300_000)], summary)
    assert "| loading / COPY speed | 0.80 | – | ≥ 0.7 |" in table
    assert "| ingest stage / COPY speed | 0.50 | 0.50 |  |" in table
    assert "| loading rows/s (shop into raw) | 80000 | – |  |" in table
    assert "| orders staging s (PostgreSQL / DuckDB) | 12.0 | – |  |" in table
    assert "| requests per 1000 recipients (SendGrid) | 2.3 | – |  |" in table


def test_a_stage_passes_on_its_landing_and_model_seconds():
    assert bc._stage_extra({"shop": {}, "landing": {"rows": 3, "wall_s": 1.0}}) == {
        "landing": {"rows": 3, "wall_s": 1.0}}
    assert bc._stage_extra({"build": {"rows": {"staging.orders": 5}, "seconds": {"staging.orders": 0.2}}}) == {
        "model_seconds": {"staging.orders": 0.2}}
    assert bc._stage_extra({"rows": 7}) == {"rows": 7} and bc._stage_extra(None) == {}
