-- grain: one row per coupon or loyalty card (one of each kind per member of a campaign run that gives it)
-- materialized: table
-- Written by martech.campaigns.coupons.issue_coupons when the audience snapshot is built, so the
-- codes exist before dispatch renders them. Codes derive from the send id and a secret; a rerun keeps
-- every code, and the terms of a coupon already sent never change. Holdout members carry the code they
-- would have got (never sent): count issued coupons by joining the send ledger on send_id.
create table if not exists campaigns.coupons (
    code text not null,  -- <PREFIX>-XXXX-XXXX-XXXX, upper case, no 0/O/1/I/L in the random part
    campaign_id text not null, -- Campaign
    run_id text not null, -- Campaign run
    contact_id text not null, -- Recipient's contact id
    send_id text not null,  -- The send the code belongs to (campaigns.send_ledger.send_id, step 1)
    discount_percent integer not null, -- Discount the code gives, in percent
    valid_from timestamptz not null,  -- Midnight UTC of the run date
    expires_at timestamptz not null,  -- First instant the code no longer works (valid_from + validity_days)
    kind text not null default 'coupon', -- coupon (a promo code) or loyalty_card
    constraint coupons_pkey primary key (code),
    constraint coupons_kind_check check (kind in ('coupon', 'loyalty_card')),
    constraint coupons_code_check check (code = upper(btrim(code)) and code <> ''),
    constraint coupons_percent_check check (discount_percent between 1 and 100),
    constraint coupons_validity_check check (expires_at > valid_from)
)
;;
create index if not exists coupons__send_id on campaigns.coupons (send_id)

;;
alter table campaigns.coupons add column if not exists kind text not null default 'coupon'
;;
-- One coupon and one loyalty card per member of a run (the key used to allow one code of any kind): a
-- unique index, the same on a fresh warehouse and on one migrated from the one-code key.
alter table campaigns.coupons drop constraint if exists coupons_member_key
;;
create unique index if not exists coupons_member_kind_key on campaigns.coupons (campaign_id, run_id, contact_id, kind)
;;
alter table campaigns.coupons drop constraint if exists coupons_kind_check
;;
alter table campaigns.coupons add constraint coupons_kind_check check (kind in ('coupon', 'loyalty_card'))
