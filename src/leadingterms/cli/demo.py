"""``leadingterms demo``: the whole pipeline on the embedded synthetic corpus (thin CLI layer)."""

from __future__ import annotations

import sys

from leadingterms.cli import Command
from leadingterms.demo import DemoConfig, DemoResult, run_demo
from leadingterms.progress import progress_enabled


def run(cfg: DemoConfig) -> DemoResult:
    cfg.progress = cfg.progress and progress_enabled()
    return run_demo(cfg, on_stage=lambda m: print(m, file=sys.stderr))


COMMAND = Command(
    name="demo",
    help="the main job: synthetic corpus -> basis -> predictions -> training -> intervention -> report",
    description="Run every stage on the embedded synthetic corpus (stories with planted associations) in about "
    "a minute on 2 CPU cores, write OUT/run/report.html and print a short summary.",
    config=DemoConfig,
    run=run,
    show=lambda result: result.lines,
)
