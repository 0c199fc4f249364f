-- grain: one row per level (category / product) and ordered pair (antecedent, consequent) bought by the same customer
-- materialized: model
-- Association measures over customers' baskets (all completed orders of a customer form one basket):
-- support = share of customers who bought both, confidence = P(consequent | antecedent),
-- lift = confidence / P(consequent). This model writes the category rows; martech.models.recommend writes
-- the product rows (level 'product', ids as text, pairs of at least 5 customers).
create table if not exists marts.product_affinity (
    level text not null,  -- category (this SQL) or product (martech.models.recommend)
    antecedent text not null, -- Category or product bought
    consequent text not null, -- Category or product bought with it
    pair_count integer not null,  -- Customers who bought both
    support numeric(10, 6) not null,  -- pair_count / all customers with a purchase
    confidence numeric(10, 6) not null,  -- P(consequent | antecedent)
    lift numeric(10, 4) not null,  -- confidence / P(consequent); > 1 means bought together more than by chance
    as_of_date date not null, -- Data before this date was used
    primary key (level, antecedent, consequent)
)
;;
delete from marts.product_affinity
where level = 'category'
;;
insert into marts.product_affinity
with

orders as (
    select * from staging.orders
    where status = 'completed' and order_ts < %(run_date)s::date
),

items as (
    select * from staging.order_items
),

products as (
    select * from staging.products
),

customer_categories as (
    select distinct
        orders.customer_id,
        products.category
    from orders
    inner join items on orders.order_id = items.order_id
    inner join products on items.product_id = products.product_id
),

totals as (
    select count(distinct customer_id) as customers from customer_categories
),

category_counts as (
    select
        category,
        count(*) as customers
    from customer_categories
    group by category
),

pairs as (
    select
        a.category as antecedent,
        b.category as consequent,
        count(*) as pair_count
    from customer_categories as a
    inner join customer_categories as b
        on a.customer_id = b.customer_id and a.category <> b.category
    group by a.category, b.category
),

final as (
    select
        'category' as level,
        pairs.antecedent,
        pairs.consequent,
        pairs.pair_count,
        round(pairs.pair_count::numeric / totals.customers, 6) as support,
        round(pairs.pair_count::numeric / ca.customers, 6) as confidence,
        round(
            (pairs.pair_count::numeric / ca.customers) / (cc.customers::numeric / totals.customers), 4
        ) as lift,
        %(run_date)s::date as as_of_date
    from pairs
    cross join totals
    inner join category_counts as ca on pairs.antecedent = ca.category
    inner join category_counts as cc on pairs.consequent = cc.category
)

select * from final
