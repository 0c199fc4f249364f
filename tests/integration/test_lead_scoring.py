"""Lead scoring on the simulator: as good as the true propensity, calibrated, versioned, reproducible."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

from martech.models import leads

pytestmark = pytest.mark.integration
AS_OF = dt.date(2026, 6, 1)


@pytest.fixture(scope="module")
def staged(simulated_staging):
    return simulated_staging(AS_OF, customers=4000, seed=21)


def test_model_auc_is_within_003_of_the_true_propensity_auc(staged, tmp_path):
    frame = leads.load_leads(staged, AS_OF)
    model = leads.train(frame, AS_OF)
    assert model.method == "model" and model.n_validation > 300
    mature = frame[frame["mature"]].sort_values(["created_at", "contact_id"])
    valid = mature.iloc[int(len(mature) * (1 - leads.VALIDATION_SHARE)):]
    with staged.connect() as conn:
        truth = pd.read_sql_query(sa.text("select contact_id, propensity from sim_truth.leads"), conn)
    valid = valid.merge(truth, on="contact_id", how="left")
    assert valid["propensity"].notna().all()
    y = valid["converted"].to_numpy(int)
    true_auc = roc_auc_score(y, valid["propensity"])
    model_auc = roc_auc_score(y, leads.predict(model, valid))
    assert model.metrics["roc_auc"] == pytest.approx(model_auc)
    print(f"\nlead scoring AUC: model {model_auc:.4f}, true propensity {true_auc:.4f}, n={len(valid)}")
    assert abs(model_auc - true_auc) <= 0.03, (model_auc, true_auc)
    # Calibrated: the mean predicted probability matches the observed rate, decile by decile roughly.
    assert abs(model.metrics["brier"] - np.mean((valid["propensity"] - y) ** 2)) < 0.02
    top, bottom = model.calibration[-1], model.calibration[0]
    assert top["observed"] > bottom["observed"] + 0.3
    assert all(abs(c["mean_predicted"] - c["observed"]) < 0.2 for c in model.calibration)


def test_scores_tiers_metrics_and_versioned_artifact(staged, tmp_path):
    result = leads.build_lead_scores(staged, AS_OF, tmp_path / "models")
    version = result["model_version"]
    assert result["method"] == "model" and result["rows"] > 100
    manifest = json.loads((tmp_path / "models" / "lead_score" / version / "manifest.json").read_text())
    assert manifest["version"] == version and manifest["features"] and manifest["metrics"]["roc_auc"] > 0.6
    assert manifest["training_window"][1] <= manifest["validation_window"][0]  # time-based split
    with staged.connect() as conn:
        rows = conn.execute(sa.text("select tier, method, model_version, score from marts.lead_scores"
                                    " where as_of = :d"), {"d": AS_OF}).all()
        open_leads = conn.execute(sa.text("select count(*) from staging.contacts where lead_source is not null"
                                          " and customer_id is null and created_at < :d"), {"d": AS_OF}).scalar_one()
        metrics = dict(conn.execute(sa.text("select metric, value from kpis.model_metrics where model_version = :v"
                                            " and slice = 'validation'"), {"v": version}).all())
    assert len(rows) == open_leads
    assert {r.method for r in rows} == {"model"} and {r.model_version for r in rows} == {version}
    assert {r.tier for r in rows} <= {"A", "B", "C", "D"} and len({r.tier for r in rows}) >= 3
    for r in rows:
        assert r.tier == leads.tier(np.array([r.score]))[0]
    assert set(metrics) >= {"roc_auc", "pr_auc", "brier", "base_rate"}
    # Same data again: the same version, the stored artifact reused, identical scores.
    again = leads.build_lead_scores(staged, AS_OF, tmp_path / "models")
    assert again["model_version"] == version
    with staged.connect() as conn:
        assert conn.execute(sa.text("select tier, method, model_version, score from marts.lead_scores"
                                    " where as_of = :d"), {"d": AS_OF}).all() == rows
    with pytest.raises(FileNotFoundError, match="known versions"):
        leads.load(tmp_path / "models", "lead_score-19990101-model-0000000000")


def test_points_model_when_labels_are_too_few(staged):
    frame = leads.load_leads(staged, AS_OF)
    converters = frame[frame["converted"] & frame["mature"]]
    few = pd.concat([frame[~frame["converted"]], converters.head(10)])
    model = leads.train(few, AS_OF)
    assert model.method == "points" and model.estimator is None
    scores = leads.predict(model, few)
    assert ((scores >= 0) & (scores < 1)).all()
    # More activity means more points, all else equal.
    base = few.iloc[[0]].copy()
    busy = base.assign(form_submissions=base["form_submissions"] + 3)
    assert leads.points_score(busy)[0] > leads.points_score(base)[0]
