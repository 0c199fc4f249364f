"""The campaign files that do not validate, as this file's import error in the Airflow UI.

`campaigns.py` builds a DAG for every valid campaign and skips the broken ones; this file raises with
one line per problem (file, field, what to change), so a typo in one YAML shows up here instead of
silently removing that campaign, and costs the other campaigns nothing. It defines no DAG.
"""

from __future__ import annotations

from martech import paths
from martech.campaigns.spec import CampaignSpecError, scan_campaigns

_errors = scan_campaigns(paths.campaigns_dir())[1]
if _errors:
    raise CampaignSpecError([*(line for lines in _errors.values() for line in lines),
                             "(the other campaigns keep their DAGs; check with `martech campaigns validate`)"])
