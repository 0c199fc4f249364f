-- grain: one row per customer, as-of date and rank
-- materialized: table
-- Written by martech.models.recommend.build_recommendations: the top products each customer has not bought,
-- scored by item-to-item co-purchase (sum of P(product | bought product)), with the explanation.
create table if not exists marts.recommendations (
    as_of date not null, -- Orders placed before this date were used
    customer_id bigint not null, -- Shop customer
    contact_id text, -- CRM contact linked to the customer, if any
    rank integer not null check (rank >= 1), -- 1 = best
    product_id bigint not null, -- Recommended product (not bought by the customer before as_of)
    score double precision not null, -- Sum over bought products X of P(this product | X)
    because_product_id bigint, -- The bought product that contributes most; null for popularity fill-ins
    reason text not null, -- "bought X; customers who buy it buy Y", or "popular: ..."
    primary key (as_of, customer_id, rank)
)
