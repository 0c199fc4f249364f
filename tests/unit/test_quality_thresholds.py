"""The raw gate's rules, without Great Expectations: which checks get a threshold, and what it says."""

from __future__ import annotations

import pytest

from martech.quality.expectations import (
    MAX_BAD_ROW_SHARE,
    ExpectationSpec,
    batch_size_drift,
    columns_are,
    email,
    fresh,
    matches,
    max_bad_row_share,
    one_of_re,
    postgres_regex,
    unique_in_batch,
    with_history,
    with_threshold,
)
from martech.quality.gx_runner import suite_name
from martech.quality.results import ExpectationResult


@pytest.mark.parametrize(("value", "share"), [
    (None, MAX_BAD_ROW_SHARE), ("", MAX_BAD_ROW_SHARE), ("0.02", 0.02), ("2%", 0.02), (" 10 % ", 0.10),
    ("0", 0.0), (0.3, 0.3), ("1", 1.0),
])
def test_the_share_comes_from_the_argument_the_env_or_the_default(monkeypatch, value, share):
    monkeypatch.delenv("MARTECH_MAX_BAD_ROW_SHARE", raising=False)
    assert max_bad_row_share(value) == pytest.approx(share)


def test_the_env_sets_the_share_and_nonsense_is_refused_with_the_variable_named(monkeypatch):
    monkeypatch.setenv("MARTECH_MAX_BAD_ROW_SHARE", "1.5%")
    assert max_bad_row_share() == pytest.approx(0.015)
    for bad in ("lots", "-0.1", "150%"):
        monkeypatch.setenv("MARTECH_MAX_BAD_ROW_SHARE", bad)
        with pytest.raises(ValueError, match="MARTECH_MAX_BAD_ROW_SHARE"):
            max_bad_row_share()


def test_only_critical_row_level_checks_get_mostly():
    assert with_threshold(email(), 0.05).kwargs["mostly"] == pytest.approx(0.95)
    assert with_threshold(unique_in_batch("order_id"), 0.2).kwargs["mostly"] == pytest.approx(0.8)
    warning = matches("country", ".*", critical=False, fix="")
    for spec in (warning, columns_are(["a"]), fresh(), batch_size_drift()):
        assert "mostly" not in with_threshold(spec, 0.05).kwargs, spec.expectation
    own = ExpectationSpec("expect_column_values_to_not_be_null", "id", {"mostly": 0.5})
    assert with_threshold(own, 0.05).kwargs["mostly"] == 0.5
    assert "mostly" not in with_threshold(email(), 0).kwargs  # no tolerance: plain GX, any bad row fails


def test_batch_size_bounds_come_from_the_trailing_batches():
    spec = batch_size_drift()
    young = with_history(spec, [1000, 1000])
    assert (young.kwargs["min_value"], young.kwargs["max_value"]) == (0, 10**12)  # no normal size yet
    judged = with_history(spec, [900, 1000, 1100])
    assert (judged.kwargs["min_value"], judged.kwargs["max_value"]) == (750, 1501)
    assert "mean 1,000 rows" in judged.fix
    assert with_history(email(), [1, 2, 3]) == email()  # only trailing checks take bounds


def _result(**kw) -> ExpectationResult:
    base = dict(table="raw.shop_orders", expectation="expect_column_values_to_match_regex",
                column="total_amount", kwargs={}, success=False, critical=False, unexpected_count=3,
                unexpected_sample=["€1,234.50"], observed="3 of 300 rows unexpected (1.00%), at most 5% tolerated",
                fix="total_amount must be a number", max_bad_share=0.05, handled="staging parses them")
    base.update(kw)
    return ExpectationResult(**base)  # type: ignore[arg-type]


def test_descriptions_say_whether_staging_takes_the_rows_or_the_source_is_broken():
    under = _result()
    assert under.tolerated
    assert under.describe() == ("raw.shop_orders.total_amount [expect_column_values_to_match_regex]: 3 of 300 rows"
                                " unexpected (1.00%), at most 5% tolerated — under the threshold, not a stop:"
                                " staging parses them; e.g. '€1,234.50'")
    over = _result(critical=True, observed="90 of 300 rows unexpected (30.00%), at most 5% tolerated")
    assert not over.tolerated
    assert "over the threshold: not a few bad rows but a systematic problem" in over.describe()
    plain = _result(max_bad_share=None, critical=True)
    assert "threshold" not in plain.describe()


def test_suite_names_carry_the_campaign_of_an_audience_check():
    assert suite_name("raw.shop_orders", "rows", "raw:2026-06-01") == "raw.shop_orders"
    assert suite_name("raw.shop_orders", "batches", "raw:2026-06-01") == "raw.shop_orders batches"
    assert suite_name("audiences.audience_members", "rows", "audience:winback:2026-06-01") == (
        "audiences.audience_members@winback")


def test_the_regexes_gx_runs_in_postgresql_are_in_its_dialect():
    # PostgreSQL knows no scoped (?i:...) group: the word list is made case-insensitive as a whole
    assert postgres_regex(one_of_re(("opted_in", "unknown"))) == r"(?i)^\s*(?:opted_in|unknown)\s*$"
    assert postgres_regex(r"^\s*\+?\d+\s*$") == r"^\s*\+?\d+\s*$"     # shared syntax stays as it is
    with pytest.raises(ValueError, match="no PostgreSQL form"):
        postgres_regex(r"^ID-(?i:a|b)$")                               # case-sensitive letters outside
