"""The gate between an audience snapshot and its send (Great Expectations on the treatment arm).

Critical expectations, any failure blocks the send (the campaign DAG's dispatch task does not run):

* every member has consent (staging.contacts consent_status opted_in / double_opt_in);
* no member is on the suppression list (by address or contact id);
* no address appears twice (lower-cased, trimmed);
* every address is a valid email;
* the treatment arm's size is within ``SIZE_BOUNDS`` × the mean of the campaign's previous
  ``TRAILING_RUNS`` snapshots. With fewer than ``MIN_HISTORY`` previous snapshots the size check is
  recorded but not enforced (a new campaign has no normal size yet).

Results go to ``kpis.data_quality`` under run id ``audience:<campaign>:<run>`` (table
``audiences.audience_members``), replacing an earlier check of the same run.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from martech.campaigns.eligibility import CONSENTED_STATUSES
from martech.quality.expectations import EMAIL_RE, ExpectationSpec
from martech.quality.gx_runner import validate_frames
from martech.quality.results import QualityReport, check, record_results

TABLE = "audiences.audience_members"
TRAILING_RUNS = 5
MIN_HISTORY = 3
SIZE_BOUNDS = (0.2, 5.0)

_MEMBERS = sa.text("""
select
    m.contact_id,
    lower(btrim(m.email)) as email,
    coalesce(c.consent_status in :consented, false) as consented,
    exists (
        select 1 from campaigns.suppressions as s
        where s.email = lower(btrim(m.email)) or s.contact_id = m.contact_id
    ) as suppressed
from audiences.audience_members as m
left join staging.contacts as c on c.contact_id = m.contact_id
where m.campaign_id = :campaign_id and m.run_id = :run_id and m.arm = 'treatment'
order by m.contact_id
""").bindparams(sa.bindparam("consented", expanding=True))

_HISTORY = sa.text("""
select treatment from audiences.snapshots
where campaign_id = :campaign_id and run_id < :run_id
order by run_id desc
limit :n
""")


_PEER_HISTORY = sa.text("""
select treatment from audiences.snapshots
where campaign_id = :campaign_id and run_id = any(cast(:peers as text[]))
order by run_id desc
""")


def size_bounds(history: list[int], *, min_upper: int = 1) -> tuple[int, int] | None:
    """(min, max) treatment size allowed, or None while the history is too short to judge.

    ``min_upper`` floors the upper bound: small hourly arms swing by more than 5× from noise alone.
    """
    if len(history) < MIN_HISTORY:
        return None
    mean = sum(history) / len(history)
    return int(mean * SIZE_BOUNDS[0]), max(int(mean * SIZE_BOUNDS[1]) + 1, min_upper)


def expectations(bounds: tuple[int, int] | None) -> list[ExpectationSpec]:
    specs = [
        ExpectationSpec("expect_column_values_to_be_in_set", "consented", {"value_set": [True]},
                                fix="a member without consent: check the audience SQL and staging.contacts"),
        ExpectationSpec("expect_column_values_to_be_in_set", "suppressed", {"value_set": [False]},
                                fix="a suppressed address reached the snapshot: rebuild the audience"),
        ExpectationSpec("expect_column_values_to_be_unique", "email",
                                fix="one address on two contacts: merge them in the CRM or staging"),
        ExpectationSpec("expect_column_values_to_match_regex", "email", {"regex": EMAIL_RE},
                                fix="fix the address in the CRM; invalid addresses bounce"),
    ]
    low, high = bounds if bounds else (0, 10**12)
    specs.append(ExpectationSpec(
        "expect_table_row_count_to_be_between", None, {"min_value": low, "max_value": high},
        critical=bounds is not None,
        fix=f"the audience is far from its usual size (allowed {low}..{high}): check the audience SQL and"
            " the inputs before sending; rerun once it is understood"))
    return specs


def check_snapshot(engine: Any, campaign_id: str, run_id: str, run_date: dt.date, *,
                   peers: list[str] | None = None, min_upper: int = 1) -> QualityReport:
    """Validate the run's treatment arm, record the results, raise DataQualityError on a critical failure.

    The size is compared with the previous ``TRAILING_RUNS`` snapshots, or with the snapshots of the run
    ids in ``peers`` (an hourly series: the same step at the same hour on earlier days).
    """
    import pandas as pd

    with engine.connect() as conn:
        frame = pd.read_sql_query(_MEMBERS, conn, params={"campaign_id": campaign_id, "run_id": run_id,
                                                          "consented": list(CONSENTED_STATUSES)})
        if peers is None:
            found = conn.execute(_HISTORY, {"campaign_id": campaign_id, "run_id": run_id, "n": TRAILING_RUNS})
        else:
            found = conn.execute(_PEER_HISTORY, {"campaign_id": campaign_id, "peers": peers})
        history = [int(n) for (n,) in found]
    bounds = size_bounds(history, min_upper=min_upper)
    report = validate_frames({TABLE: frame}, {TABLE: expectations(bounds)},
                                     f"audience:{campaign_id}:{run_id}", run_date)
    record_results(engine, report, run_date)
    check(report)
    return report
