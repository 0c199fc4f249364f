"""Send-time optimisation: the option's validation, the sto/fixed assignment and the comparison's rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import yaml

from martech.campaigns.audience import assign_arm, assign_send_time_arm
from martech.campaigns.spec import CampaignSpecError, load_campaign
from martech.kpis.send_time import comparison_rows
from martech.kpis.uplift import newcombe_interval
from martech.simulate.responses import _at_preferred_hour, open_multiplier, true_preferred_hour

BASE = {
    "id": "promo", "name": "Promo", "owner": "crm", "description": "test", "schedule": "0 8 * * *",
    "audience_sql": "audiences/promo.sql", "template": "birthday", "holdout_share": 0.1,
    "variants": [{"id": "a", "weight": 1, "subject": "Hi"}],
}


def _load(tmp_path: Path, **extra) -> object:
    (tmp_path / "audiences").mkdir(exist_ok=True)
    (tmp_path / "audiences" / "promo.sql").write_text("select contact_id, email, first_name from x\n")
    path = tmp_path / "promo.yml"
    path.write_text(yaml.safe_dump({**BASE, **extra}, sort_keys=False))
    return load_campaign(path)


def test_send_time_option_loads_and_needs_a_window(tmp_path: Path) -> None:
    spec = _load(tmp_path, send_window={"start": "08:00", "end": "21:00"},
                 send_time={"optimise": True, "comparison_share": 0.3})
    assert spec.send_time.optimise and spec.send_time.comparison_share == 0.3
    with pytest.raises(CampaignSpecError) as info:
        _load(tmp_path, send_time={"optimise": True})
    assert "send_time" in str(info.value) and "send_window" in str(info.value)
    with pytest.raises(CampaignSpecError) as info:
        _load(tmp_path, send_window={"start": "08:00", "end": "21:00"}, send_time={"optimise": True,
                                                                                 "comparison_share": 1.0})
    assert "comparison_share" in str(info.value) and "0.95" in str(info.value)
    assert _load(tmp_path, send_time={"optimise": False}).send_time.optimise is False  # off: no window needed


def test_shipped_abandoned_cart_optimises_its_send_time() -> None:
    from martech.campaigns.spec import load_campaigns

    spec = {s.id: s for s in load_campaigns()}["abandoned_cart"]
    assert spec.hourly and spec.send_window is not None
    assert spec.send_time is not None and spec.send_time.optimise


def test_assignment_is_deterministic_near_the_share_and_independent_of_the_holdout() -> None:
    ids = [f"c{i:05d}" for i in range(20_000)]
    arms = [assign_send_time_arm("promo", c, 0.3) for c in ids]
    assert arms == [assign_send_time_arm("promo", c, 0.3) for c in ids]  # stable across reruns
    share = arms.count("fixed") / len(ids)
    assert abs(share - 0.3) < 3 * np.sqrt(0.3 * 0.7 / len(ids))
    assert set(arms) == {"sto", "fixed"}
    # Another campaign draws its own split; the holdout split does not predict the send-time one.
    other = [assign_send_time_arm("vip", c, 0.3) for c in ids]
    assert 0.3 < sum(a != b for a, b in zip(arms, other, strict=True)) / len(ids) < 0.5
    holdout = np.asarray([assign_arm("promo", "promo", c, 0.5) == "holdout" for c in ids])
    fixed = np.asarray(arms) == "fixed"
    assert abs(fixed[holdout].mean() - fixed[~holdout].mean()) < 0.03
    with pytest.raises(ValueError, match="comparison_share"):
        assign_send_time_arm("promo", "c1", 1.5)


def test_comparison_rows_put_the_difference_and_its_interval_on_the_sto_row() -> None:
    arms = [
        {"campaign_id": "promo", "arm": "fixed", "period_start": dt.date(2026, 1, 1),
         "period_end": dt.date(2026, 1, 3), "members": 110, "sends": 100, "human_opens": 30, "clicks": 6,
         "conversions": 2},
        {"campaign_id": "promo", "arm": "sto", "period_start": dt.date(2026, 1, 1),
         "period_end": dt.date(2026, 1, 3), "members": 105, "sends": 100, "human_opens": 45, "clicks": 9,
         "conversions": 3},
    ]
    rows = comparison_rows(arms, dt.date(2026, 1, 10))
    assert [r["arm"] for r in rows] == ["sto", "fixed"]
    sto, fixed = rows
    assert sto["open_rate"] == 0.45 and fixed["open_rate"] == 0.30 and fixed["open_rate_diff"] is None
    d, low, high = newcombe_interval(45, 100, 30, 100)
    assert (sto["open_rate_diff"], sto["open_rate_diff_low"], sto["open_rate_diff_high"]) == (d, low, high)
    assert low < 0.15 < high and sto["as_of_date"] == dt.date(2026, 1, 10)
    # An arm without sends has no rates and no difference.
    lonely = comparison_rows([{**arms[1], "sends": 0, "human_opens": 0, "clicks": 0, "conversions": 0}],
                             dt.date(2026, 1, 10))
    assert lonely[0]["open_rate"] is None and lonely[0]["open_rate_diff"] is None


def test_simulated_contacts_prefer_an_hour_and_open_more_near_it() -> None:
    ids = np.asarray([f"c{i}" for i in range(5000)])
    hours = true_preferred_hour(ids)
    assert (hours == true_preferred_hour(ids)).all() and hours.min() >= 0 and hours.max() <= 23
    assert len(set(hours.tolist())) > 12  # spread over the day, not one hour for everyone
    assert list(open_multiplier(np.asarray([10, 11, 13, 22, 1]), np.asarray([10, 10, 10, 23, 23]))) == [
        1.6, 1.6, 1.1, 1.6, 1.1]
    # The first instant in the preferred hour after delivery: later today, in the current hour, or tomorrow.
    day = 20_000 * 86_400
    after = np.asarray([day + 9 * 3600, day + 14 * 3600 + 600, day + 20 * 3600])
    got = _at_preferred_hour(after, np.asarray([0, 0, 2]), np.asarray([18, 14, 7]), np.asarray([0.5, 0.5, 0.0]))
    assert got[0] == day + 18 * 3600 + 1800
    assert after[1] < got[1] < day + 15 * 3600
    assert got[2] == day + 86_400 + 5 * 3600  # 07:00 at UTC+2 tomorrow
