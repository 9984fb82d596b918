"""The demo's configuration checks and summary helpers (the demo itself runs once, in tests/e2e)."""

from __future__ import annotations

import pytest

from leadingterms.analyses import per_layer_text
from leadingterms.demo import DemoConfig, horizon_demo_lines, run_demo
from leadingterms.errors import LeadingTermsError


def test_demo_refuses_bad_settings(tmp_path):
    with pytest.raises(LeadingTermsError, match="--steps must be a positive integer"):
        run_demo(DemoConfig(out=str(tmp_path), steps=0))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(LeadingTermsError, match="not a folder"):
        run_demo(DemoConfig(out=str(f)))
    assert not any(tmp_path.iterdir()) or [p.name for p in tmp_path.iterdir()] == ["file"]


def test_demo_horizon_lines_headline_first_and_at_most_two():
    from leadingterms.training.tracking import horizon_summary

    rows = [{"step": s, "closed_form": {"W_O": {"rel": 0.1}, "layers.0.V": {"rel": 0.3}},
             "shadow": {"W_O": {"rel": 0.01 * s}, "layers.0.V": {"rel": 0.001}, "layers.1.V": {"rel": 0.05 * s}},
             "second_order": {"W_O": {"rel": 0.2}}} for s in (4, 8, 12)]
    h = horizon_summary(rows, lr=0.8, N=512, batch_size=128, grad_accum=1,
                        tracked=("closed_form", "shadow", "second_order"))
    lines = horizon_demo_lines(h)
    assert len(lines) == 2
    assert lines[0].startswith("validity horizon, sustained rel > 5%/20% (earliest layer; held = within at step 12)")
    assert lines[0].endswith("headline shadow (§5), minibatch SGD: W_O s=8/held (sη=6.4/–); V s=4/8 (sη=3.2/6.4)")
    assert lines[1] == "  closed form (§3): W_O s=4/held (sη=3.2/–); V s=4/4 (sη=3.2/3.2)"


def test_per_layer_text_groups_layers():
    rows = [{"readout": "B̄", "layer": None, "hits": 16, "total": 16},
            *({"readout": f"W^({l})", "layer": l, "hits": h, "total": 16} for l, h in enumerate((0, 10, 16))),
            *({"readout": f"V^({l})·W_O", "layer": l, "hits": h, "total": 28} for l, h in enumerate((3, 5, 9)))]
    text = per_layer_text(rows, lambda r: f"{r['hits']}/{r['total']}")
    assert text == "B̄ 16/16, W^(l) 0/16·10/16·16/16, V^(l)·W_O 3/28·5/28·9/28"


@pytest.mark.slow
def test_demo_rerun_with_other_settings_needs_force(tmp_path):
    small = dict(out=str(tmp_path / "d"), synthetic_docs=40, seq_len=12, layers=1, batch_size=8, steps=2,
                 log_every=1, eval_sequences=8, intervention_sequences=8, heatmap_tokens=5, progress=False)
    run_demo(DemoConfig(**small))
    run_demo(DemoConfig(**small))  # same settings: the corpus and basis are reused
    with pytest.raises(LeadingTermsError, match="--force"):
        run_demo(DemoConfig(**{**small, "synthetic_docs": 50}))
    res = run_demo(DemoConfig(**{**small, "synthetic_docs": 50, "force": True}))
    assert res is not None
    import json
    assert json.loads((tmp_path / "d" / "corpus" / "corpus.json").read_text())["source"]["n_docs"] == 50
