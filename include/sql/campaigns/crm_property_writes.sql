-- grain: one row per contact address and CRM property written back
-- materialized: table
-- Written by martech.crm.writeback: the last value of each score property the CRM acknowledged for a
-- contact. A run sends only the values that differ from these, and records the new ones in the
-- transaction that marks their batch sent.
create table if not exists campaigns.crm_property_writes (
    email text not null, -- The contact's address, lower case: the upsert's idProperty (personal data)
    property text not null, -- CRM property name, e.g. martech_rfm_segment
    value text not null, -- Last value written ('' clears the property in the CRM)
    batch_id text not null, -- The batch that wrote it (campaigns.crm_write_batches)
    written_at timestamptz not null, -- When the CRM acknowledged that batch
    constraint crm_property_writes_pkey primary key (email, property)
)
