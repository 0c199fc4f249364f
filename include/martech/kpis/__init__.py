"""KPI tables analysts query (schema ``kpis``): campaign results, honest uplift and the business KPI families.

:func:`martech.kpis.build.build_kpis` rebuilds them all for a run date; :mod:`martech.kpis.uplift` holds the
treatment-vs-holdout statistics (formulas in docs/kpis.md).
"""
