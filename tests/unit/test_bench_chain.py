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
