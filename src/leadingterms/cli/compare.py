"""``leadingterms compare``: training runs side by side (thin CLI layer)."""

from __future__ import annotations

from leadingterms.cli import Command
from leadingterms.comparison import CompareRunsConfig, compare_runs, summary_lines

COMMAND = Command(
    name="compare",
    help="compare training runs (or sweeps): horizon against the learning rate with a fitted power law",
    description="Write OUT/report.html (self-contained) and OUT/compare.json comparing training runs: the "
    "headline validity horizon (docs/theory.md §6.3) of every weight against the learning rate, in steps and "
    "s·η, with a fitted power law (theory: s ∝ 1/η); overlaid tracking curves and losses; intervention deltas "
    "side by side (runs with intervention.json); planted recovery and overlap per layer. A sweep folder stands "
    "for all its runs.",
    config=CompareRunsConfig,
    run=compare_runs,
    show=summary_lines,
)
