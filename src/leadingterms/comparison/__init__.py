"""``leadingterms compare``: training runs side by side (records and fits, figures, one HTML page)."""

from leadingterms.comparison.records import fit_power_law, horizon_fits
from leadingterms.comparison.runner import CompareRunsConfig, CompareRunsResult, compare_runs, summary_lines

__all__ = ["CompareRunsConfig", "CompareRunsResult", "compare_runs", "fit_power_law", "horizon_fits",
           "summary_lines"]
