"""Demo smoke test: every stage on a tiny synthetic configuration; the summary's contents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leadingterms.demo import DemoConfig, _horizon_line, run_demo
from leadingterms.errors import LeadingTermsError


def test_demo_tiny_end_to_end(tmp_path):
    msgs: list[str] = []
    cfg = DemoConfig(out=str(tmp_path / "d"), docs=30, seq_len=16, layers=2, lr=1.0, batch_size=10, steps=4,
                     log_every=1, eval_sequences=8, intervention_sequences=6, heatmap_tokens=8, progress=False)
    res = run_demo(cfg, echo=msgs.append)
    out = Path(cfg.out)
    for p in ("corpus/corpus.json", "stats", "predictions.safetensors", "run/metrics.jsonl", "run/summary.json",
              "run/intervention.json", "run/report.html"):
        assert (out / p).exists(), p
    assert len(msgs) >= 5 and "training 2 layers" in " ".join(msgs)
    lines = res["lines"]
    assert 5 <= len(lines) <= 10
    assert lines[0] == f"report: {out / 'run' / 'report.html'}"
    text = "\n".join(lines)
    assert "planted bigram pairs" in text and "planted context pairs" in text and "intervention at step 4" in text
    inter = json.loads((out / "run" / "intervention.json").read_text())
    assert [r["param"] for r in inter["rows"]][:2] == ["W_O", "layers.0.W"] and len(inter["rows"]) == 7
    assert inter["n_sequences"] == 6
    # planted pairs: the corpus records 16 bigram and 28 context pairs; every readout counts them
    planted = {(r["kind"], r["readout"]): r for r in res["planted"]}
    assert planted[("bigram", "B̄")]["n_planted"] == 16 and planted[("context", "Φ̄/π")]["n_planted"] == 28
    assert all(0 <= r["hits"] <= r["total"] for r in res["planted"])
    assert {d["learned"] for d in res["overlaps"]} == {"W_O", "V^(0)", "V^(0)·W_O", "W^(0)"}


def test_demo_refuses_bad_settings(tmp_path):
    with pytest.raises(LeadingTermsError, match="--steps must be a positive integer"):
        run_demo(DemoConfig(out=str(tmp_path), steps=0), echo=lambda m: None)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(LeadingTermsError, match="not a directory"):
        run_demo(DemoConfig(out=str(f)), echo=lambda m: None)


def test_horizon_line_earliest_layer():
    summary = {"validity_horizon": {"closed_form": {
        "W_O": {"5%": 8, "20%": None},
        "layers.0.V": {"5%": 6, "20%": 12}, "layers.1.V": {"5%": 4, "20%": None},
        "layers.0.W": {"5%": None, "20%": None}}}}
    assert _horizon_line(summary, "closed_form") == "W_O 5%@8/20%:never, V 5%@4/20%@12, W 5%:never/20%:never"
    assert _horizon_line(summary, "shadow") == ""
