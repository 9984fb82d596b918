"""``leadingterms report``: RUN/report.html, a self-contained page about a run (thin CLI layer)."""

from __future__ import annotations

from leadingterms.cli import Command
from leadingterms.report import ReportConfig, build_report

COMMAND = Command(
    name="report",
    help="write RUN/report.html: configuration, corpus, basis, tracking, horizon, intervention, associations",
    description="Write a self-contained HTML report (inline CSS, figures as data URIs, readable offline) about a "
    "training run: configuration, corpus summary, top associations of the basis functions, tracking plots, "
    "validity horizon, the intervention table (from `leadingterms intervene`), learned vs predicted "
    "associations, and the pretrained comparison when RUN/pretrained/ (or --pretrained) has one.",
    config=ReportConfig,
    run=build_report,
    show=lambda result: [f"wrote {result.path}"],
)
