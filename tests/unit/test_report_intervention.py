"""The report's intervention section with and without the random control (docs/theory.md (7.3))."""

from __future__ import annotations

import json

from leadingterms.intervene import INTERVENTION_FILE, InterventionConfig, run_intervention
from leadingterms.report.build import section_intervention
from leadingterms.report.html import fmt


def test_section_shows_the_random_control_next_to_each_row(run_factory):
    run = run_factory("rep_iv", layers=1, steps=2)
    run_intervention(InterventionConfig(run=str(run), max_sequences=6))
    plain = section_intervention(run)
    assert "random control" not in plain and plain.count("<tr>") == 1 + 4
    run_intervention(InterventionConfig(run=str(run), max_sequences=6, control="random", control_seeds=2, seed=7))
    html = section_intervention(run)
    assert "Δ, random control (mean)" in html and "2 seeds: 7, 8" in html
    res = json.loads((run / INTERVENTION_FILE).read_text())
    o = res["original_loss"]
    w_o = res["rows"][0]
    mean = sum(x - o for x in w_o["loss_control"]) / 2
    row = html.split("<tr>")[2]  # header row, then W_O
    assert row.startswith("<td>W_O</td>") and f">{fmt(mean)}<" in row
