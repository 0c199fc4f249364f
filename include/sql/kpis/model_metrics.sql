-- grain: one row per model version, metric and slice
-- materialized: table
-- Training and validation metrics of every fitted model version (written when the version is trained).
create table if not exists kpis.model_metrics (
    model text not null, -- Model name, e.g. lead_score
    model_version text not null, -- Version of the stored artifact the metric belongs to
    trained_at timestamptz not null, -- When the version was fitted
    metric text not null, -- roc_auc, pr_auc, brier, base_rate, calibration_mean_predicted, calibration_observed, n_train, ...
    slice text not null, -- validation, decile_01 .. decile_10, all
    value double precision not null, -- The metric's value
    primary key (model, model_version, metric, slice)
)
