"""Holdout and variant assignment: deterministic, close to the configured shares, independent."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from martech.campaigns.audience import as_run_date, assign_arm, assign_variant, eligible_audience_sql
from martech.campaigns.dispatch import make_send_id
from martech.campaigns.spec import Variant

IDS = [f"contact-{i}" for i in range(10_000)]


def test_assignment_is_stable_and_pure() -> None:
    first = [assign_arm("winback", "winback", c, 0.2) for c in IDS[:500]]
    again = [assign_arm("winback", "winback", c, 0.2) for c in IDS[:500]]
    assert first == again
    assert assign_arm("winback", "winback", "contact-1", 0.2) == assign_arm("winback", "winback", "contact-1", 0.2)


def test_assignment_follows_the_documented_hash() -> None:
    # Analysts can recompute the arm from the docs: first 8 bytes of sha256("id:salt:contact") / 2**64.
    digest = hashlib.sha256(b"winback:winback:contact-7").digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    assert assign_arm("winback", "winback", "contact-7", 0.5) == ("holdout" if u < 0.5 else "treatment")
    assert assign_arm("winback", "winback", "contact-7", 0.0) == "treatment"
    assert assign_arm("winback", "winback", "contact-7", 1.0) == "holdout"


@pytest.mark.parametrize("share", [0.05, 0.1, 0.5])
def test_holdout_share_is_respected(share: float) -> None:
    holdout = sum(assign_arm("birthday", "birthday", c, share) == "holdout" for c in IDS)
    # 10k draws: the standard error is at most 0.5 percentage points; allow four of them.
    assert abs(holdout / len(IDS) - share) < 0.02


def test_zero_holdout_sends_everyone() -> None:
    assert {assign_arm("birthday", "birthday", c, 0) for c in IDS[:1000]} == {"treatment"}


def test_salt_and_campaign_change_the_assignment() -> None:
    base = [assign_arm("winback", "winback", c, 0.5) for c in IDS[:1000]]
    salted = [assign_arm("winback", "2026", c, 0.5) for c in IDS[:1000]]
    other = [assign_arm("upsell", "winback", c, 0.5) for c in IDS[:1000]]
    assert base != salted and base != other


def test_variant_weights_are_respected() -> None:
    variants = [Variant(id="a", weight=1, subject="x"), Variant(id="b", weight=3, subject="y")]
    counts = Counter(assign_variant("upsell", "upsell", c, variants) for c in IDS)
    assert abs(counts["b"] / len(IDS) - 0.75) < 0.02
    assert assign_variant("upsell", "upsell", "c1", variants) == assign_variant("upsell", "upsell", "c1", variants)
    assert assign_variant("upsell", "upsell", "c1", {"a": 1.0, "b": 3.0}) == assign_variant(
        "upsell", "upsell", "c1", variants)


def test_single_variant_always_wins() -> None:
    assert {assign_variant("b", "b", c, {"only": 1.0}) for c in IDS[:200]} == {"only"}


def test_arm_and_variant_are_independent() -> None:
    arms_variants = Counter(
        (assign_arm("x", "x", c, 0.5), assign_variant("x", "x", c, {"a": 1.0, "b": 1.0})) for c in IDS
    )
    # Each of the four cells holds about a quarter of the contacts.
    for cell in [("holdout", "a"), ("holdout", "b"), ("treatment", "a"), ("treatment", "b")]:
        assert abs(arms_variants[cell] / len(IDS) - 0.25) < 0.02


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        assign_arm("x", "x", "c", 1.5)
    with pytest.raises(ValueError):
        assign_variant("x", "x", "c", [])


def test_send_id_is_deterministic_and_short() -> None:
    sid = make_send_id("winback", "2024-06-01", 1, "c-1")
    assert sid == hashlib.sha256(b"winback|2024-06-01|1|c-1").hexdigest()[:32]
    assert sid != make_send_id("winback", "2024-06-01", 2, "c-1")


def test_run_date_accepts_dates_and_iso_strings_only() -> None:
    from datetime import date, datetime

    assert as_run_date("2024-02-28") == date(2024, 2, 28)
    with pytest.raises(TypeError):
        as_run_date(datetime(2024, 2, 28, 10))


def test_eligibility_wrapper_survives_trailing_comment_and_semicolon() -> None:
    sql = eligible_audience_sql("select 1 as contact_id;\n-- trailing comment")
    assert "-- trailing comment\n)" in sql
    assert "consent_status in ('opted_in', 'double_opt_in')" in sql
    assert "campaigns.suppressions" in sql
