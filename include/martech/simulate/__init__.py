"""A seeded simulator of the sources martech reads: a shop database, a CRM export and e-mail events.

:func:`generate_sources` writes two years of shop history and the CRM export; :func:`play_responses`
plays the world's reaction to a campaign send (webhook-shaped events and new orders, with a true,
recorded uplift). The ground truth goes to ``sim_truth``, which the pipeline never reads.
"""

from __future__ import annotations

from martech.simulate.responses import ResponseSummary, play_responses
from martech.simulate.sources import SourceSummary, generate_sources

__all__ = ["ResponseSummary", "SourceSummary", "generate_sources", "play_responses"]
