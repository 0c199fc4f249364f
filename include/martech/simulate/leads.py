"""CRM lead activity with a known conversion propensity.

Contacts who were in the CRM as leads before (or instead of) buying form the lead pool. Each carries the
activity properties a CRM keeps on a lead — how it came in (``lead_source``), page views, e-mail opens and
form submissions — drawn *given* whether the lead converted (became a shop customer), each property
independently. That makes the true propensity exact and known: by Bayes,

    logit P(convert | x) = logit(π) + Σ_j log f_1(x_j) / f_0(x_j)

with π the pool's conversion share and f_1 / f_0 the property distributions of converters and the rest.
Country carries signal too: how many customers came in through the CRM as a lead first differs by country
(:data:`LEAD_FIRST_BY_COUNTRY`), so among leads ``P(country | converted) ∝ w_c e_c`` against
``P(country | not) = w_c`` (``w`` the country mix, ``e`` the lead-first share) and its term is
``log(e_c / Σ_k w_k e_k)``. Recency shows in the lead's web sessions (they stop when it converts).
``sim_truth.leads`` records it per lead; a lead-scoring model is checked against its AUC.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from martech.simulate.people import COUNTRIES, COUNTRY_WEIGHTS

LEAD_SOURCES = ("organic_search", "paid_search", "social", "referral", "newsletter", "event")
SOURCE_P_CONVERTED = np.asarray([0.24, 0.20, 0.10, 0.21, 0.15, 0.10])
SOURCE_P_OTHER = np.asarray([0.22, 0.25, 0.29, 0.08, 0.11, 0.05])
# Poisson means of the activity counts: (converted, not converted).
ACTIVITY_MEANS = {"page_views": (7.0, 3.5), "email_opens": (3.0, 1.6), "form_submissions": (0.8, 0.35)}
# Share of a country's customers who were CRM leads before their first order (≈0.35 overall).
LEAD_FIRST_BY_COUNTRY = {"DE": 0.36, "FR": 0.30, "GB": 0.42, "US": 0.46, "NL": 0.38, "ES": 0.24, "IT": 0.24,
                         "SE": 0.40, "AT": 0.32, "PL": 0.22}


def country_log_ratio(country: np.ndarray) -> np.ndarray:
    """``log P(country | converted) / P(country | not converted)`` among leads (0 for unknown codes)."""
    w = np.asarray(COUNTRY_WEIGHTS) / sum(COUNTRY_WEIGHTS)
    e = np.asarray([LEAD_FIRST_BY_COUNTRY[c] for c in COUNTRIES])
    ratio = dict(zip(COUNTRIES, np.log(e / (w * e).sum())))
    return pd.Series(country).map(ratio).fillna(0.0).to_numpy(dtype=float)


def add_lead_activity(rng: np.random.Generator, contacts: pd.DataFrame, signup_s: pd.Series) -> pd.DataFrame:
    """Add lead_source, activity counts, ``in_lead_pool``, ``converted`` and ``propensity`` columns.

    ``signup_s`` is the shop signup time (unix seconds) of the contact's customer, NaN for pure leads.
    """
    out = contacts.copy()
    is_customer = out["customer_id"].notna().to_numpy()
    signup = signup_s.to_numpy(dtype=float)
    created = out["created_at"].to_numpy(dtype=float)
    converted = is_customer & (created < signup)
    pool = ~is_customer | converted
    n = len(out)
    source_idx = np.where(converted, _pick(rng, n, SOURCE_P_CONVERTED), _pick(rng, n, SOURCE_P_OTHER))
    llr = np.log(SOURCE_P_CONVERTED[source_idx] / SOURCE_P_OTHER[source_idx])
    llr += country_log_ratio(out["country"].to_numpy())
    for name, (mean_1, mean_0) in ACTIVITY_MEANS.items():
        counts = rng.poisson(np.where(converted, mean_1, mean_0))
        llr += counts * np.log(mean_1 / mean_0) - (mean_1 - mean_0)
        out[name] = np.where(pool, counts, -1)
    share = converted[pool].mean() if pool.any() else 0.0
    prior = np.log(share / (1 - share)) if 0 < share < 1 else 0.0
    sources = np.asarray(LEAD_SOURCES, dtype=object)[source_idx]
    sources[~pool] = None
    out["lead_source"] = sources
    out["in_lead_pool"] = pool
    out["converted"] = converted
    out["propensity"] = np.where(pool, 1 / (1 + np.exp(-(prior + llr))), np.nan)
    out["converted_at"] = np.where(converted, signup, np.nan)
    return out


def _pick(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    return np.minimum(np.searchsorted(np.cumsum(p), rng.random(n) * p.sum(), side="right"), len(p) - 1)
