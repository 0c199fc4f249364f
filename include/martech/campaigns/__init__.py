"""Batch email campaigns: definitions, audience snapshots, rendering and exactly-once dispatch.

Importing this package (or :mod:`martech.campaigns.spec`) is cheap: DAG files load the campaign
definitions at parse time. The modules that touch the database or Jinja are imported on use:

- :mod:`martech.campaigns.spec`       YAML definitions (pydantic + yaml only)
- :mod:`martech.campaigns.audience`   deterministic holdout/variant assignment, audience snapshots
- :mod:`martech.campaigns.render`     Jinja templates to subject, HTML and plain text
- :mod:`martech.campaigns.transports` the transport interface and the outbox (files)
- :mod:`martech.campaigns.smtp_transport`, :mod:`martech.campaigns.sendgrid_transport` SMTP relay and
  SendGrid's v3 Mail Send API
- :mod:`martech.campaigns.dispatch`   the send ledger and the exactly-once send loop
- :mod:`martech.campaigns.suppressions` adding addresses to ``campaigns.suppressions``
"""

from martech.campaigns.spec import CampaignSpec, CampaignSpecError, Variant, load_campaign, load_campaigns

__all__ = ["CampaignSpec", "CampaignSpecError", "Variant", "load_campaign", "load_campaigns"]
