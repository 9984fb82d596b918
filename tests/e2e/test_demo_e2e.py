"""The one end-to-end run: ``leadingterms demo`` on a tiny synthetic configuration, through the CLI."""

from __future__ import annotations

import json
import re

from helpers import run_cli

from leadingterms.persist import read_json


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "d"
    rc, stdout, stderr = run_cli(capsys, "demo", "--out", out, "--synthetic-docs", 30, "--seq-len", 16, "--layers", 2,
                                 "--lr", 1.0, "--batch-size", 10, "--steps", 4, "--log-every", 1,
                                 "--eval-sequences", 8, "--intervention-sequences", 6, "--heatmap-tokens", 8)
    assert rc == 0, stderr
    for p in ("corpus/corpus.json", "stats/basis.json", "predictions.safetensors", "run/metrics.jsonl",
              "run/summary.json", "run/intervention.json", "run/report.html"):
        assert (out / p).exists(), p
    assert "training 2 layers" in stderr and stderr.count("] ") >= 5  # the stage messages
    lines = stdout.strip().splitlines()
    assert 5 <= len(lines) <= 10
    assert lines[0] == f"report: {out / 'run' / 'report.html'}"
    text = "\n".join(lines)
    assert "planted bigram pairs" in text and "planted context pairs" in text and "intervention at step 4" in text
    inter = json.loads((out / "run" / "intervention.json").read_text())
    assert [r["param"] for r in inter["rows"]][:2] == ["W_O", "layers.0.W"] and len(inter["rows"]) == 7
    assert inter["n_sequences"] == 6
    # the corpus records 16 planted bigram and 28 context pairs; the report counts them per readout
    planted = read_json(out / "corpus" / "corpus.json")["planted"]
    assert sum(p["kind"] == "bigram" for p in planted) == 16 and sum(p["kind"] == "context" for p in planted) == 28
    assert re.search(r"B̄ \d+/\d+", text) and re.search(r"Φ̄/π \d+/\d+", text)
    # planted pairs and overlap for every layer (2 here), and the sustained shadow horizon as the headline
    assert re.search(r"W\^\(l\) \d+/\d+·\d+/\d+", text) and re.search(r"V\^\(l\)·W_O \d+/\d+·\d+/\d+", text)
    assert re.search(r"V\^\(l\) \d\.\d\d·\d\.\d\d", text)
    assert "validity horizon, sustained rel > 5%/20%" in text and "headline shadow (§5), minibatch SGD" in text
    assert "\n  closed form (§3): W_O " in text
    html = (out / "run" / "report.html").read_text(encoding="utf-8")
    assert "Planted associations found in the top-5" in html
