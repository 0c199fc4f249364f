-- grain: one row per customer per consumable product per as-of date
-- materialized: table
-- Written by martech.models.replenishment.build_replenishment, which replaces one as_of at a time in a
-- single transaction. Every customer who bought a consumable product (CONSUMABLE_CATEGORIES) in a completed
-- order before as_of has a row per such product. Intervals are counted per unit: a purchase of q units is
-- expected to last q times the unit interval. The customer's own intervals are shrunk towards the product's
-- population interval on the log scale (docs/models.md, "Replenishment").
create table if not exists marts.replenishment_due (
    as_of date not null, -- Exclusive as-of date: completed orders placed before its midnight (UTC) are used
    customer_id bigint not null, -- Shop customer id (staging.orders.customer_id)
    contact_id text, -- CRM contact linked to the customer (staging.contacts.customer_id), if any
    product_id bigint not null, -- The consumable product (staging.products.product_id)
    category text not null, -- Its category, one of the consumable categories
    purchases integer not null, -- Days on which the customer bought the product (several orders of a day count once)
    intervals integer not null, -- The customer's own intervals between those days (purchases - 1)
    last_purchase_date date not null, -- UTC day of the latest purchase before as_of
    last_quantity integer not null, -- Units bought that day: the next need is this many unit intervals later
    own_unit_interval_days double precision, -- Geometric mean of the customer's own days per unit; null without an interval
    population_unit_interval_days double precision not null, -- Geometric mean days per unit of everyone at population_level
    population_level text not null check (population_level in ('product', 'category', 'all')), -- product with enough intervals, else category, else all consumables
    shrinkage_weight double precision not null, -- n / (n + k_n): weight of the own intervals (k per own-interval count in model_version)
    unit_interval_days double precision not null, -- exp(w * own log mean + (1 - w) * population log mean)
    predicted_next_date date not null, -- last_purchase_date + last_quantity * unit_interval_days (rounded)
    remind_on date not null, -- predicted_next_date minus the reminder lead (remind_days_before)
    remind_days_before integer not null, -- How many days before the predicted need the reminder is due
    days_until_next integer not null, -- predicted_next_date - as_of (negative: overdue)
    model_version text not null, -- Code version and the prior strengths chosen, e.g. replenishment-2 k=1:13,2:5,3+:3
    primary key (as_of, customer_id, product_id)
)
