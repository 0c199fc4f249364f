"""SaaS connectors: HubSpot CRM v3 and the Shopify Admin API, landing into ``raw.*`` with checkpoints.

- :mod:`martech.ingest.connectors.hubspot` — contacts and deals via the CRM search API
- :mod:`martech.ingest.connectors.shopify` — customers, orders and abandoned checkouts via the REST Admin API
- :mod:`martech.ingest.connectors.run` — what the ``ingest`` DAG's tasks call (reads ``include/sources.yml``)
- ``_http`` (typed client, retry policy, testing switch) and ``_land`` (the checkpoint protocol)

Importing this package imports nothing heavy; the modules load what they need.
"""
