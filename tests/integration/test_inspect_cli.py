"""``leadingterms inspect``: per-layer predictions of a run's checkpoint on a prompt, lens.json, plots,
one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import one_line_error, run_cli

from leadingterms.lens import logit_lens, run_with_cache
from leadingterms.training import load_run


@pytest.fixture(scope="module")
def run2(run_factory):
    return run_factory("inspect_run", layers=2, steps=3)


def test_inspect_prints_every_layer_and_writes_lens_and_plots(run2, tmp_path, capsys):
    out = tmp_path / "ins"
    rc, stdout, _ = run_cli(capsys, "inspect", "--run", run2, "--text", "The bird flew", "--k", "3", "--out", out)
    assert rc == 0, stdout
    assert "position 0: 'the', next in the prompt 'bird'" in stdout
    for lab in ("embed", "layer 0", "layer 1"):
        assert stdout.count(f"  {lab}") >= 3
    assert sorted(p.name for p in out.iterdir() if p.name != ".leadingterms.lock") == ["attention.png", "attention.svg", "lens.json"]
    doc = json.loads((out / "lens.json").read_text())
    assert doc["tokens"] == ["the", "bird", "flew"] and doc["step"] == 3
    assert [r["reading"] for r in doc["readings"]] == ["embed", "layer 0", "layer 1"]
    # the last reading is the model's own next-token distribution
    r = load_run(run2)
    model = r.load_checkpoint(3).to(torch.float64)
    vocab = r.basis().vocab
    ids = torch.tensor([[vocab.index(t) for t in doc["tokens"]]])
    with torch.no_grad():
        p = torch.softmax(model(ids)[0], dim=-1)
    for t in range(3):
        top = doc["readings"][-1]["positions"][t]
        assert [e["prob"] for e in top] == pytest.approx(torch.sort(p[t], descending=True).values[:3].tolist(),
                                                         rel=1e-9)
        assert all(p[t, vocab.index(e["token"])].item() == pytest.approx(e["prob"], rel=1e-9) for e in top)
    _, cache = run_with_cache(model, ids)
    assert torch.allclose(logit_lens(cache, model.W_O)[-1], cache["hook_logits"])


def test_inspect_default_out_and_no_plots(run2, capsys):
    rc, stdout, _ = run_cli(capsys, "inspect", "--run", run2, "--text", "the", "--no-plots")
    assert rc == 0 and f"wrote {run2 / 'inspect' / 'lens.json'}" in stdout
    assert not (run2 / "inspect" / "attention.png").exists()


def test_inspect_errors_are_one_line(run2, capsys):
    one_line_error(capsys, "inspect", "--run", run2, "--text", "the zyzzyva", match="'zyzzyva'")
    one_line_error(capsys, "inspect", "--run", run2, "--text", "  ", match="no tokens")
    one_line_error(capsys, "inspect", "--run", run2, "--text", " ".join(["the"] * 40), match="at most T=12")
    one_line_error(capsys, "inspect", "--run", run2, "--text", "the", "--step", "99", match="no checkpoint")
