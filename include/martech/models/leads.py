"""Lead scoring: which CRM leads are likely to become customers (``marts.lead_scores``).

Population: contacts that came in as leads (the CRM exported lead properties for them: ``lead_source``).
Label: converted — the lead is linked to a shop customer by the as-of date. Only *mature* leads
(created at least ``MATURITY_DAYS`` before the as-of date) are labelled, so young leads that simply had
no time yet do not count as failures.

Model: a scikit-learn pipeline (one-hot lead source / country / consent, scaled activity counts,
logistic regression), calibrated with 5-fold sigmoid calibration on the training window, validated on the
most recent quarter of mature leads (a time-based split: the model never sees the future it is judged
on). Metrics — ROC AUC, PR AUC, Brier score, calibration by decile — go to ``kpis.model_metrics``. The
fitted model is stored with a manifest (training window, features, metrics, data hash) under
``MARTECH_HOME/models/lead_score/<version>/``, and scoring always names the version it uses.

With fewer than ``MIN_POSITIVES`` converted (or ``MIN_NEGATIVES`` unconverted) training leads, a points
model scores instead: ``POINTS`` per activity, decayed with a half-life of ``HALF_LIFE_DAYS`` since the
lead was created, mapped to 0..1 by ``points / (points + POINTS_SCALE)``. ``method`` says which scored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

MODEL = "lead_score"
MATURITY_DAYS = 120
VALIDATION_SHARE = 0.25
MIN_POSITIVES, MIN_NEGATIVES = 50, 50
CATEGORICAL = ("lead_source", "country", "consent_status")
NUMERIC = ("page_views", "email_opens", "form_submissions", "age_days")
TIERS = ((0.6, "A"), (0.35, "B"), (0.15, "C"))  # score >= 0.6 → A, >= 0.35 → B, >= 0.15 → C, else D
POINTS = {"page_views": 1.0, "email_opens": 3.0, "form_submissions": 10.0}
SOURCE_POINTS = {"referral": 8.0, "event": 6.0, "organic_search": 4.0, "newsletter": 4.0}
HALF_LIFE_DAYS = 90.0
POINTS_SCALE = 30.0


@dataclass
class TrainedModel:
    version: str
    method: str  # "model" or "points"
    trained_at: str
    as_of: str
    training_window: tuple[str, str]
    validation_window: tuple[str, str]
    features: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)
    calibration: list[dict[str, float]] = field(default_factory=list)
    data_hash: str = ""
    n_train: int = 0
    n_validation: int = 0
    estimator: Any = None

    def manifest(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("estimator")
        return out


def load_leads(engine: Any, as_of: dt.date) -> pd.DataFrame:
    """Every lead known at ``as_of`` with its features and (for mature leads) its label."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        frame = pd.read_sql_query(sa.text("""
            select contact_id, lead_source, country, consent_status, page_views, email_opens, form_submissions,
                   created_at, customer_id is not null as converted
            from staging.contacts
            where lead_source is not null and created_at < :d
            order by contact_id"""), conn, params={"d": as_of})
    created = pd.to_datetime(frame["created_at"], utc=True)
    frame["age_days"] = (pd.Timestamp(as_of, tz="UTC") - created).dt.total_seconds() / 86400
    frame["mature"] = frame["age_days"] >= MATURITY_DAYS
    for col in ("page_views", "email_opens", "form_submissions"):
        frame[col] = frame[col].fillna(0).astype(float)
    for col in CATEGORICAL:
        frame[col] = frame[col].fillna("unknown").astype(str)
    return frame


def _pipeline() -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore", min_frequency=20), list(CATEGORICAL)),
        ("numeric", StandardScaler(), list(NUMERIC)),
    ])
    base = Pipeline([("features", features), ("model", LogisticRegression(C=1.0, max_iter=2000))])
    return CalibratedClassifierCV(base, method="sigmoid", cv=5)


def points_score(frame: pd.DataFrame) -> np.ndarray:
    points = sum(frame[c].to_numpy(float) * w for c, w in POINTS.items())
    points = points + frame["lead_source"].map(SOURCE_POINTS).fillna(0.0).to_numpy(float)
    decay = 0.5 ** (frame["age_days"].to_numpy(float) / HALF_LIFE_DAYS)
    weighted = points * decay
    return weighted / (weighted + POINTS_SCALE)


def tier(score: np.ndarray) -> np.ndarray:
    out = np.full(len(score), "D", dtype=object)
    for threshold, name in reversed(TIERS):
        out[np.asarray(score) >= threshold] = name
    return out


def _metrics(y: np.ndarray, p: np.ndarray) -> tuple[dict[str, float], list[dict[str, float]]]:
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    metrics = {"roc_auc": float(roc_auc_score(y, p)), "pr_auc": float(average_precision_score(y, p)),
               "brier": float(brier_score_loss(y, p)), "base_rate": float(np.mean(y))}
    deciles = pd.qcut(pd.Series(p).rank(method="first"), 10, labels=False)
    calib = [{"decile": int(d) + 1, "mean_predicted": float(p[deciles == d].mean()),
              "observed": float(y[deciles == d].mean()), "n": int((deciles == d).sum())}
             for d in sorted(deciles.unique())]
    return metrics, calib


def train(leads: pd.DataFrame, as_of: dt.date) -> TrainedModel:
    """Fit on the older mature leads, validate on the newest quarter of them."""
    mature = leads[leads["mature"]].sort_values(["created_at", "contact_id"])
    if len(mature) < 20:
        raise ValueError(f"lead scoring needs at least 20 mature leads (created {MATURITY_DAYS}+ days before "
                         f"{as_of}); found {len(mature)}")
    cut = int(len(mature) * (1 - VALIDATION_SHARE))
    train_set, valid = mature.iloc[:cut], mature.iloc[cut:]
    y_train, y_valid = train_set["converted"].to_numpy(int), valid["converted"].to_numpy(int)
    digest = hashlib.sha256(pd.util.hash_pandas_object(
        mature[["contact_id", *CATEGORICAL, *NUMERIC, "converted"]], index=False).to_numpy().tobytes()).hexdigest()
    window = lambda f: (str(f["created_at"].min()), str(f["created_at"].max()))  # noqa: E731
    enough = y_train.sum() >= MIN_POSITIVES and (len(y_train) - y_train.sum()) >= MIN_NEGATIVES
    method = "model" if enough else "points"
    version = f"{MODEL}-{as_of:%Y%m%d}-{method}-{digest[:10]}"
    model = TrainedModel(version=version, method=method, trained_at=dt.datetime.now(dt.timezone.utc).isoformat(),
                         as_of=as_of.isoformat(), training_window=window(train_set),
                         validation_window=window(valid), features=(*CATEGORICAL, *NUMERIC), data_hash=digest,
                         n_train=len(train_set), n_validation=len(valid))
    if enough:
        model.estimator = _pipeline().fit(train_set[list(model.features)], y_train)
    if len(valid) and 0 < y_valid.sum() < len(y_valid):
        model.metrics, model.calibration = _metrics(y_valid, predict(model, valid))
    return model


def predict(model: TrainedModel, frame: pd.DataFrame) -> np.ndarray:
    if model.method == "points":
        return points_score(frame)
    return model.estimator.predict_proba(frame[list(model.features)])[:, 1]


# -- model store ---------------------------------------------------------------------------------------


def model_dir(root: Path, version: str) -> Path:
    return Path(root) / MODEL / version


def save(model: TrainedModel, root: Path) -> Path:
    folder = model_dir(root, model.version)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    (folder / "manifest.json").write_text(json.dumps(model.manifest(), indent=2, sort_keys=True) + "\n")
    return folder


def load(root: Path, version: str) -> TrainedModel:
    path = model_dir(root, version) / "model.pkl"
    if not path.exists():
        known = sorted(p.name for p in (Path(root) / MODEL).glob("*")) if (Path(root) / MODEL).exists() else []
        raise FileNotFoundError(f"no lead-score model version {version!r} under {Path(root) / MODEL};"
                                f" known versions: {', '.join(known) or 'none'}")
    model = pickle.loads(path.read_bytes())
    if model.version != version:
        raise ValueError(f"{path} holds version {model.version!r}, not {version!r}")
    return model


# -- warehouse -----------------------------------------------------------------------------------------


def write_metrics(conn: Any, model: TrainedModel) -> int:
    import sqlalchemy as sa

    rows = [(k, "validation", v) for k, v in model.metrics.items()]
    rows += [(f"calibration_{k}", f"decile_{c['decile']:02d}", c[k]) for c in model.calibration
             for k in ("mean_predicted", "observed")]
    rows += [("n_train", "all", float(model.n_train)), ("n_validation", "all", float(model.n_validation))]
    conn.execute(sa.text("delete from kpis.model_metrics where model = :m and model_version = :v"),
                 {"m": MODEL, "v": model.version})
    if rows:
        conn.execute(sa.text(
            "insert into kpis.model_metrics (model, model_version, trained_at, metric, slice, value)"
            " values (:m, :v, :t, :metric, :slice, :value)"),
            [{"m": MODEL, "v": model.version, "t": model.trained_at, "metric": a, "slice": b, "value": float(c)}
             for a, b, c in rows])
    return len(rows)


def score(engine: Any, as_of: dt.date, model: TrainedModel, leads: pd.DataFrame | None = None) -> int:
    """Score the open leads (not converted) with ``model`` into marts.lead_scores for ``as_of``."""
    import sqlalchemy as sa

    from martech.db import copy_rows

    leads = load_leads(engine, as_of) if leads is None else leads
    open_leads = leads[~leads["converted"]]
    scores = predict(model, open_leads) if len(open_leads) else np.array([])
    rows = [(as_of.isoformat(), cid, repr(float(s)), t, model.method, model.version)
            for cid, s, t in zip(open_leads["contact_id"], scores, tier(scores))]
    with engine.begin() as conn:
        conn.execute(sa.text("delete from marts.lead_scores where as_of = :d"), {"d": as_of})
        return copy_rows(conn, "marts.lead_scores",
                         ("as_of", "contact_id", "score", "tier", "method", "model_version"), rows)


def build_lead_scores(engine: Any, as_of: dt.date, models_root: Path) -> dict[str, Any]:
    """Train (or reuse) the model version for ``as_of``, record its metrics, score the open leads."""
    leads = load_leads(engine, as_of)
    if leads.empty:
        return {"rows": 0, "model_version": None, "method": None}
    model = train(leads, as_of)
    folder = model_dir(models_root, model.version)
    if (folder / "model.pkl").exists():
        model = load(models_root, model.version)  # same data, same version: keep the stored artifact
    else:
        save(model, models_root)
    with engine.begin() as conn:
        write_metrics(conn, model)
    n = score(engine, as_of, load(models_root, model.version), leads)
    return {"rows": n, "model_version": model.version, "method": model.method, "metrics": model.metrics}
