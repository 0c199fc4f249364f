-- grain: one row per fit of the CLV models (the as-of date whose history they were fitted on)
-- materialized: table
-- Written by martech.models.clv.build_clv_predictions. The models are refitted when the newest fit of
-- this code version is REFIT_DAYS or more older than the run's as-of date (or later than it); between
-- fits, each day's customers are scored with the stored parameters. Method: docs/clv.md.
create table if not exists marts.clv_fits (
    fitted_as_of date not null, -- Exclusive as-of date of the history the models were fitted on
    code_version text not null, -- martech.models.clv.MODEL_VERSION of the code that fitted them
    bgnbd_r double precision not null, -- BG/NBD: shape of the purchase-rate Gamma
    bgnbd_alpha double precision not null, -- BG/NBD: scale of the purchase-rate Gamma
    bgnbd_a double precision not null, -- BG/NBD: first parameter of the drop-out Beta
    bgnbd_b double precision not null, -- BG/NBD: second parameter of the drop-out Beta
    gg_p double precision, -- Gamma-Gamma p (null: too few repeat buyers to fit the spend model)
    gg_q double precision, -- Gamma-Gamma q
    gg_gamma double precision, -- Gamma-Gamma gamma
    customers integer not null, -- Customers in the fit
    trained_at timestamptz not null default now(), -- When the fit ran (wall clock)
    primary key (code_version, fitted_as_of)
)
