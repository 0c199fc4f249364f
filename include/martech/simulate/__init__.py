"""A seeded simulator of a shop, its CRM and its email recipients.

``generate_sources`` writes the shop's operational tables (schema ``shop``) and a CRM contacts export;
``play_responses`` plays the recipients of a campaign run (email events in the SendGrid event-webhook
shape, and the orders that follow, with a true uplift in the treatment arm). What the simulator knows
and the pipeline must discover — each customer's purchase rate and drop-out probability, the planted
co-purchase pairs, the true campaign effect — goes to ``sim_truth``, which the pipeline never reads.
"""

from martech.simulate.responses import ResponseSummary, play_responses
from martech.simulate.shop import SourceSummary, generate_sources

__all__ = ["ResponseSummary", "SourceSummary", "generate_sources", "play_responses"]
