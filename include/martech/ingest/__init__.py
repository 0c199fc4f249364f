"""Ingest: landing raw batches from the shop database, CRM exports, files and the HubSpot and Shopify APIs."""
