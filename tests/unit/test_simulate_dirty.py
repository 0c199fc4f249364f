"""Planted defects: every kind, at the asked rate, one per row, labelled with what was there before."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from martech.ingest.exports import read_csv
from martech.simulate._common import rng_for
from martech.simulate.defects import BY_CODE, KINDS
from martech.simulate.dirty import LABEL_COLUMNS, ORDER_REJECTS, _mojibake, amount_text, plant_defects
from martech.simulate.sources import build_world, crm_csv_bytes, crm_frame

AS_OF = dt.date(2026, 6, 1)
FILE = "contacts_20260601.csv"


@pytest.fixture(scope="module")
def world():
    return build_world(as_of=AS_OF, customers=700, seed=31)


def _plant(world, rate, seed=1):
    return plant_defects(world, rate=rate, rng=rng_for(seed, 12), crm_file=FILE, crm_frame=crm_frame)


@pytest.mark.parametrize(("cents", "text"), [(0, "0.00"), (5, "0.05"), (1234, "12.34"), (100000, "1000.00"),
                                             (-1290, "-12.90")])
def test_amount_text(cents: int, text: str) -> None:
    assert amount_text([cents])[0] == text


@pytest.mark.parametrize(("name", "garbled"), [("Björn", "BjÃ¶rn"), ("Léa", "LÃ©a"), ("Anna", None)])
def test_mojibake_is_reversible_by_re_decoding(name: str, garbled: str | None) -> None:
    assert _mojibake(name) == garbled
    if garbled:
        assert garbled.encode("cp1252").decode("utf-8") == name


def test_rate_zero_writes_the_clean_sources_and_labels_only_natural_kinds(world) -> None:
    w = _plant(world, 0.0)
    assert w.crm_bytes == crm_csv_bytes(world.contacts)
    assert len(w.orders) == len(world.orders) and len(w.items) == len(world.items)
    assert len(w.customers) == len(world.customers)
    assert (w.orders["total_text"] == amount_text(world.orders["total_cents"])).all()
    assert set(w.labels["origin"]) == {"natural"} and set(w.labels["kind"]) == {"refund", "null_birthday"}


def test_natural_kinds_label_every_refund_and_every_empty_birthday(world) -> None:
    w = _plant(world, 0.03)
    refunds = set(world.orders.loc[world.orders["status"] == "refunded", "order_id"].astype(str))
    assert set(w.labels.loc[w.labels["kind"] == "refund", "row_key"]) == refunds
    _header, records = read_csv(w.crm_bytes)
    empty = {r.line for r in records if r.fields is not None and r.fields["birthday"] == ""}
    assert set(w.labels.loc[w.labels["kind"] == "null_birthday", "line_no"]) == empty


def test_every_kind_is_planted_and_each_row_carries_at_most_one_planted_defect(world) -> None:
    w = _plant(world, 0.03)
    planted = w.labels[w.labels["origin"] == "planted"]
    assert set(planted["kind"]) | {"refund", "null_birthday"} == {k.code for k in KINDS}
    assert (planted["table_name"] == planted["kind"].map(lambda k: BY_CODE[k].table)).all()
    key = np.where(planted["table_name"] == "crm_contacts", planted["line_no"].astype(str), planted["row_key"])
    assert not pd.Series(list(zip(planted["table_name"], key))).duplicated().any()
    assert list(w.labels.columns) == list(LABEL_COLUMNS)


def test_the_rate_sets_how_many_rows_are_planted(world) -> None:
    low = _plant(world, 0.01).labels
    high = _plant(world, 0.04).labels
    n_low = (low["origin"] == "planted").sum()
    n_high = (high["origin"] == "planted").sum()
    assert 3 < n_high / n_low < 5
    rows = len(world.orders) + len(world.items) + len(world.customers) + len(world.contacts)
    assert 0.6 * 0.04 * rows < n_high < 1.4 * 0.04 * rows


def test_lines_of_rejected_orders_are_labelled_as_their_consequence(world) -> None:
    w = _plant(world, 0.03)
    rejected = w.labels[w.labels["kind"].isin(ORDER_REJECTS)]["row_key"].astype(int)
    lines = world.items[world.items["order_id"].isin(rejected)]
    expected = {f"{o}:{n}" for o, n in zip(lines["order_id"], lines["line_no"])}
    conseq = w.labels[w.labels["origin"] == "consequence"]
    of_orders = conseq[conseq["table_name"] == "shop_order_items"]
    assert set(of_orders["row_key"]) == expected and set(of_orders["kind"]) == {"orphan_order_item"}
    # the only other consequences: the lines of a cart whose value overflows, each naming a planted cart
    of_carts = conseq[conseq["table_name"] != "shop_order_items"]
    planted_carts = set(w.labels[w.labels["kind"] == "cart_value_out_of_range"]
                        .query("origin == 'planted'")["row_key"].astype(str))
    assert set(of_carts["table_name"]) <= {"shop_cart_items"}
    assert {key.split(":")[0] for key in of_carts["row_key"]} == planted_carts


def test_planting_is_deterministic_and_does_not_touch_the_world(world) -> None:
    before = world.orders.copy()
    a, b = _plant(world, 0.02, seed=4), _plant(world, 0.02, seed=4)
    assert a.crm_bytes == b.crm_bytes
    pd.testing.assert_frame_equal(a.labels, b.labels)
    pd.testing.assert_frame_equal(a.orders, b.orders)
    pd.testing.assert_frame_equal(world.orders, before)
    assert _plant(world, 0.02, seed=5).crm_bytes != a.crm_bytes


def test_a_rate_outside_the_range_is_refused(world) -> None:
    with pytest.raises(ValueError, match=r"defect_rate must be between 0 and 0\.2"):
        _plant(world, 0.5)
