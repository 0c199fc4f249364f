"""Coupon codes: unique, deterministic, human-friendly; the YAML block and its defaults.

Writing them to campaigns.coupons (idempotent reruns, collisions, sent coupons) is tested against
PostgreSQL in tests/integration/test_eligibility.py.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

from martech.campaigns.coupons import (
    ALPHABET,
    Coupon,
    coupon_code,
    coupon_window,
    is_well_formed,
    normalize_code,
)
from martech.campaigns.dispatch import make_send_id
from martech.campaigns.spec import CampaignSpecError, load_campaign, load_campaigns

SECRET = "coupon-secret-for-tests"


def test_alphabet_has_no_look_alikes() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 31
    assert not set("01OIL") & set(ALPHABET)


def test_codes_are_unique_over_100k_sends() -> None:
    send_ids = [make_send_id("birthday", f"2024-06-{1 + i % 30:02d}", 1, f"C{i:07d}") for i in range(100_000)]
    codes = [coupon_code(s, SECRET, prefix="BDAY") for s in send_ids]
    assert len(set(codes)) == len(codes) == 100_000
    assert all(is_well_formed(c) for c in codes[:2000])
    # Every character of the alphabet occurs in every position: no position is stuck.
    for position in range(len("BDAY-"), len(codes[0])):
        if codes[0][position] != "-":
            assert {c[position] for c in codes[:5000]} == set(ALPHABET)


def test_codes_are_deterministic_and_depend_on_send_secret_and_attempt() -> None:
    code = coupon_code(make_send_id("winback", "2024-06-03", 1, "C1"), SECRET, prefix="WB")
    assert code == coupon_code(make_send_id("winback", "2024-06-03", 1, "C1"), SECRET, prefix="WB")
    assert code.startswith("WB-") and len(code) == len("WB-XXXX-XXXX-XXXX")
    others = {
        coupon_code(make_send_id("winback", "2024-06-10", 1, "C1"), SECRET, prefix="WB"),
        coupon_code(make_send_id("winback", "2024-06-03", 1, "C1"), "another secret", prefix="WB"),
        coupon_code(make_send_id("winback", "2024-06-03", 1, "C1"), SECRET, prefix="WB", attempt=1),
    }
    assert code not in others and len(others) == 3


def test_normalize_and_check_codes_as_typed() -> None:
    assert normalize_code("  bday-2345 -abcd-wxyz ") == "BDAY-2345-ABCD-WXYZ"
    assert is_well_formed("BDAY-2345-ABCD-WXYZ")
    assert not is_well_formed("BDAY-2345-ABCD-WXY0")  # 0 is not in the alphabet
    assert not is_well_formed("BDAY-2345-ABCD")


def test_validity_window_and_last_day() -> None:
    valid_from, expires_at = coupon_window(date(2024, 6, 1), 7)
    assert valid_from == datetime(2024, 6, 1, tzinfo=timezone.utc)
    assert expires_at == datetime(2024, 6, 8, tzinfo=timezone.utc)
    coupon = Coupon("BDAY-2345-ABCD-WXYZ", "birthday", "2024-06-01", "C1", "s", 15, valid_from, expires_at)
    assert coupon.valid_until == date(2024, 6, 7)
    assert coupon.as_attribute() == {"code": "BDAY-2345-ABCD-WXYZ", "discount_percent": 15,
                                     "valid_from": "2024-06-01", "valid_until": "2024-06-07",
                                     "expires_at": "2024-06-08T00:00:00+00:00"}


def test_shipped_birthday_coupon_is_valid_for_a_week() -> None:
    specs = {s.id: s for s in load_campaigns()}
    assert specs["birthday"].coupon is not None
    assert (specs["birthday"].coupon.validity_days, specs["birthday"].coupon.prefix) == (7, "BDAY")
    assert specs["winback"].coupon is not None and specs["winback"].coupon.discount_attribute == "coupon_percent"
    assert specs["upsell"].coupon is None


# -- the YAML block ------------------------------------------------------------------------------------


def _write(tmp_path: Path, **fields) -> Path:
    (tmp_path / "audiences").mkdir(exist_ok=True)
    (tmp_path / "audiences" / "gift.sql").write_text("select contact_id, email, first_name from x\n")
    data = {"id": "gift-box", "name": "Gift", "owner": "crm", "description": "d", "schedule": "0 8 * * *",
            "audience_sql": "audiences/gift.sql", "template": "birthday", "holdout_share": 0.1,
            "variants": [{"id": "a", "weight": 1, "subject": "Hi"}], **fields}
    path = tmp_path / "gift-box.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_coupon_is_optional_with_defaults(tmp_path: Path) -> None:
    assert load_campaign(_write(tmp_path)).coupon is None
    spec = load_campaign(_write(tmp_path, coupon={"discount_percent": 5}))
    assert spec.coupon is not None
    assert (spec.coupon.discount_percent, spec.coupon.validity_days, spec.coupon.prefix) == (5, 14, "GIFTBOX")
    assert spec.coupon.discount_attribute is None


@pytest.mark.parametrize(("coupon", "expected"), [
    ({"discount_percent": 0}, "coupon.discount_percent must be a whole percentage between 1 and 100"),
    ({"discount_percent": 12.5}, "coupon.discount_percent: input should be a valid integer"),
    ({"discount_percent": 10, "validity_days": 0}, "coupon.validity_days must be between 1 and 365"),
    ({"discount_percent": 10, "prefix": "bday"}, "coupon.prefix must be 1 to 12 upper-case letters or digits"),
    ({"discount_percent": 10, "discount_attribute": "Coupon Percent"}, "coupon.discount_attribute must be"),
    ({"discount_percent": 10, "percent": 5}, "coupon.percent is not a known field"),
    ({"validity_days": 7}, "coupon.discount_percent is required"),
])
def test_bad_coupon_blocks_are_explained(tmp_path: Path, coupon: dict, expected: str) -> None:
    with pytest.raises(CampaignSpecError) as info:
        load_campaign(_write(tmp_path, coupon=coupon))
    assert expected in str(info.value), str(info.value)
    if "known field" in expected:
        assert "discount_percent, validity_days, prefix, discount_attribute" in str(info.value)
