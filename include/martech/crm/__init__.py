"""Round trips with the CRM: scores written back to HubSpot (:mod:`martech.crm.writeback`)."""
