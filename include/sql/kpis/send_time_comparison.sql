-- grain: one row per campaign and send-time arm (sto, fixed)
-- materialized: table
-- Written by martech.kpis.send_time from campaigns.member_outcomes and audiences.audience_members at every
-- KPI run (truncated and filled in one transaction). Campaigns with send-time optimisation split their
-- treatment members at random (a hash of campaign and contact) into sto (sent at their preferred hour) and
-- fixed (the window's usual time); the rates are per sent message and the sto row carries the difference
-- sto − fixed with its 95 % Newcombe hybrid score interval (the fixed row leaves those columns null).
create table if not exists kpis.send_time_comparison (
    campaign_id text not null,  -- Campaign id
    arm text not null check (arm in ('sto', 'fixed')),  -- sto (preferred hour) or fixed (the window's time)
    period_start date not null,  -- First send day covered
    period_end date not null,  -- Last send day covered
    members integer not null,  -- Treatment members assigned to the arm
    sends integer not null,  -- Of them, sent
    human_opens integer not null,  -- Sent messages with a human open (machine opens excluded)
    clicks integer not null,  -- Sent messages with a click
    conversions integer not null,  -- Sent members who converted within the attribution window
    open_rate double precision,  -- human_opens / sends (null without sends)
    click_rate double precision,  -- clicks / sends
    conversion_rate double precision,  -- conversions / sends
    open_rate_diff double precision,  -- sto row: open_rate of sto − of fixed (null on the fixed row)
    open_rate_diff_low double precision,  -- 95 % interval of open_rate_diff, lower end (Newcombe hybrid score)
    open_rate_diff_high double precision,  -- 95 % interval of open_rate_diff, upper end
    click_rate_diff double precision,  -- sto row: click_rate of sto − of fixed
    click_rate_diff_low double precision,  -- 95 % interval of click_rate_diff, lower end
    click_rate_diff_high double precision,  -- 95 % interval of click_rate_diff, upper end
    conversion_rate_diff double precision,  -- sto row: conversion_rate of sto − of fixed
    conversion_rate_diff_low double precision,  -- 95 % interval of conversion_rate_diff, lower end
    conversion_rate_diff_high double precision,  -- 95 % interval of conversion_rate_diff, upper end
    as_of_date date not null,  -- Data before this date was used
    primary key (campaign_id, arm)
)
