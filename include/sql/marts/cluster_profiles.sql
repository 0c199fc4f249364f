-- grain: one row per behavioural cluster per as-of date
-- materialized: table
-- Written by martech.models.clusters.build_segments: k-means on standardized RFM and category shares, k chosen
-- by silhouette; each cluster described in words. Method: docs/models.md.
create table if not exists marts.cluster_profiles (
    as_of date not null, -- Orders before this date were used
    cluster_id integer not null, -- 1 = largest cluster
    name text not null, -- Short label, e.g. "frequent high-spend recent"
    description text not null, -- Generated sentence: frequency, spend, recency, category focus, size, medians
    customers integer not null, -- Customers in the cluster
    median_recency_days double precision not null, -- Median days since the last order
    median_frequency double precision not null, -- Median number of orders
    median_monetary double precision not null, -- Median net revenue
    top_category text, -- Category with the largest mean share of units
    top_category_share double precision, -- That mean share (0..1)
    k integer not null, -- Number of clusters chosen for this as-of date
    silhouette double precision not null, -- Silhouette score of the chosen k (sampled)
    primary key (as_of, cluster_id)
)
