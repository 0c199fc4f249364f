"""The simulator's CRM leads: the true propensity is calibrated and learnable from what the CRM exports."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from martech.simulate.leads import country_log_ratio
from martech.simulate.sources import build_world, crm_csv_bytes

AS_OF = dt.date(2026, 6, 1)


@pytest.fixture(scope="module")
def pool():
    world = build_world(as_of=AS_OF, customers=6000, seed=17)
    exported = pd.read_csv(io.BytesIO(crm_csv_bytes(world.contacts)), dtype=str, keep_default_na=False)
    truth = world.contacts[["contact_id", "in_lead_pool", "converted", "propensity"]]
    frame = exported.merge(truth, on="contact_id", validate="one_to_one")
    return frame[frame["in_lead_pool"]].reset_index(drop=True)


def test_leads_are_exported_with_their_properties(pool) -> None:
    assert (pool["lead_source"] != "").all()
    # Converted leads carry their shop customer id by the as-of date; open leads do not.
    assert ((pool["shop_customer_id"] != "") == pool["converted"]).all()
    assert 0.3 < pool["converted"].mean() < 0.8


def test_true_propensity_is_calibrated_overall_and_by_country(pool) -> None:
    assert abs(pool["propensity"].mean() - pool["converted"].mean()) < 0.02
    by = pool.groupby("country").agg(p=("propensity", "mean"), y=("converted", "mean"), n=("converted", "size"))
    big = by[by["n"] >= 300]
    assert len(big) >= 4
    assert (abs(big["p"] - big["y"]) < 0.06).all()
    # Countries really differ (the planted effect is not zero).
    assert np.ptp(country_log_ratio(np.asarray(["US", "PL"]))) > 0.5


def test_a_model_on_the_exported_features_reaches_the_true_auc(pool) -> None:
    x = pd.get_dummies(pool[["lead_source", "country"]]).astype(float)
    for col in ("page_views", "email_opens", "form_submissions"):
        x[col] = pool[col].astype(int)
    y = pool["converted"].to_numpy()
    score = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=5, method="predict_proba")[:, 1]
    true_auc, model_auc = roc_auc_score(y, pool["propensity"]), roc_auc_score(y, score)
    assert true_auc > 0.8
    assert abs(model_auc - true_auc) < 0.02
