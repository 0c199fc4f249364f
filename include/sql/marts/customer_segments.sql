-- grain: one row per customer per as-of date
-- materialized: table
-- Written by martech.models.clusters.build_segments: the customer's RFM segment, lifecycle stage and behavioural
-- cluster side by side, for audiences and analysts.
create table if not exists marts.customer_segments (
    as_of date not null, -- Orders before this date were used
    customer_id bigint not null, -- Shop customer
    contact_id text, -- CRM contact linked to the customer, if any
    rfm_segment text not null, -- Named RFM segment (marts.customer_rfm.segment, docs/rfm-segments.md)
    lifecycle_stage text, -- marts.customer_lifecycle.lifecycle_stage of the linked contact
    cluster_id integer not null, -- marts.cluster_profiles.cluster_id
    cluster_name text not null, -- marts.cluster_profiles.name
    primary key (as_of, customer_id)
)
