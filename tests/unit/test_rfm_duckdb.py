"""The DuckDB version of RFM used by the benchmark computes exactly what martech.models.rfm computes."""

from __future__ import annotations

import datetime as dt
import warnings

import pandas as pd

from martech.devtools.bench import rfm_duckdb, synthetic_orders
from martech.models.rfm import score_rfm


def test_duckdb_rfm_matches_pandas_including_ties_and_the_as_of_cut() -> None:
    frame = synthetic_orders(500, 3000, seed=5)
    # Heavy ties: a block of one-order customers with identical amounts and days.
    extra = pd.DataFrame({"customer_id": range(10_001, 10_051), "order_ts": pd.Timestamp("2025-06-01", tz="UTC"),
                          "net_amount": 10.0})
    frame = pd.concat([frame, extra], ignore_index=True)
    as_of = dt.date(2025, 9, 1)  # orders after it must be ignored by both
    expected = score_rfm(frame, as_of)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = rfm_duckdb(frame, as_of)
    cols = ["customer_id", "recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm_score",
            "segment"]
    assert len(got) == len(expected) < 550
    pd.testing.assert_frame_equal(got[cols].astype(str).reset_index(drop=True),
                                  expected[cols].astype(str).reset_index(drop=True))
