"""The HTML report: every section, only inline resources, learned-vs-predicted helpers; and a
headless-Chromium render (skips where Chromium is absent) that keeps a screenshot."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import torch
from helpers import render_in_chromium

from leadingterms.analyses import default_tokens, frequent_ids, planted_recovery
from leadingterms.errors import LeadingTermsError
from leadingterms.report import ReportConfig, build_report, compare_step
from leadingterms.report.build import SECTION_IDS


@pytest.fixture(scope="module")
def run_dir(run_factory) -> Path:
    """A 2-layer run on 40 synthetic stories with its intervention, and its report (RUN/report.html)."""
    run = run_factory("report", docs=40, seq_len=24, layers=2, lr=1.0, batch_size=10, steps=6, log_every=2,
                      eval_sequences=10, intervene_sequences=8)
    build_report(ReportConfig(run=str(run), k=5, within_horizon=True, heatmap_tokens=12))
    return run


@pytest.mark.slow
def test_report_sections_and_inline_only(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in html and f'href="#{sid}"' in html, sid
    assert "Planted associations" in html and "Causal intervention" in html
    lower = html.lower()
    # nothing outside the page: no remote or relative resources
    assert not re.search(r'src\s*=\s*"(?!data:)', lower)
    assert "<link" not in lower and "<script" not in lower and "@import" not in lower
    assert not re.search(r"url\(\s*['\"]?(?!data:)", lower)
    imgs = re.findall(r'<img [^>]*src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) >= 4  # tracking, loss, positional, heatmaps
    for b64 in imgs:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    # the figures also exist as PNG + SVG next to the run
    figs = run_dir / "figures"
    for stem in ("tracking", "loss", "heatmaps", "positional"):
        assert (figs / f"{stem}.png").is_file() and (figs / f"{stem}.svg").is_file()


@pytest.mark.slow
def test_report_pretrained_section_and_options(run_dir, monkeypatch, tmp_path):
    import leadingterms.pretrained.report as pr

    run = run_dir
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "index.json").write_text("{}")
    monkeypatch.setattr(pr, "pretrained_section", lambda d: f"MARK {Path(d).name}")
    out = build_report(ReportConfig(run=str(run), out=str(tmp_path / "r.html"), tokens=["bird", "the"], k=3,
                                    step=4, heatmap_tokens=6, pretrained=str(pre)))
    html = out.path.read_text(encoding="utf-8")
    assert "MARK pre" in html and 'href="#pretrained"' in html
    assert "step 4 (chosen with --step)" in html
    with pytest.raises(LeadingTermsError, match="unknown token"):
        build_report(ReportConfig(run=str(run), out=str(tmp_path / "x.html"), tokens=["zzzz-not-a-token"]))
    with pytest.raises(LeadingTermsError, match="index.json"):
        build_report(ReportConfig(run=str(run), out=str(tmp_path / "x.html"), pretrained=str(tmp_path)))
    with pytest.raises(LeadingTermsError, match="no checkpoint at step 5"):
        build_report(ReportConfig(run=str(run), out=str(tmp_path / "x.html"), step=5))


def _fake_run(rels: dict[str, dict[str, list[float]]], *, N: int, batch_size: int, summary=None):
    """A run-like object: checkpoints 0, 1, 2, 4, 8, 12 and metrics logged at 2, 4, ..., 12."""
    from types import SimpleNamespace

    steps = [2, 4, 6, 8, 10, 12]
    metrics = [{"step": s, **{kind: {w: {"rel": v[i]} for w, v in by_w.items()} for kind, by_w in rels.items()}}
               for i, s in enumerate(steps)]
    cfg = SimpleNamespace(lr=0.1, batch_size=batch_size, grad_accum=1, track=("closed_form", "shadow"))
    return SimpleNamespace(checkpoints={s: "" for s in (0, 1, 2, 4, 8, 12)}, metrics=metrics, config=cfg,
                           info={"N": N}, summary=summary)


def test_compare_step_within_horizon_uses_the_headline_sustained_horizon():
    # the closed form is above 20% from the start (batch noise); the shadow crosses for good at step 10
    rels = {"closed_form": {"W_O": [0.3] * 6, "layers.0.W": [0.5] * 6},
            "shadow": {"W_O": [0.01, 0.25, 0.1, 0.15, 0.21, 0.3], "layers.0.W": [0.01] * 6}}
    sgd = _fake_run(rels, N=100, batch_size=10)
    assert compare_step(sgd) == 12
    assert compare_step(sgd, within_horizon=True) == 8  # the excursion at step 4 does not count
    assert compare_step(sgd, step=2, within_horizon=True) == 2
    gd = _fake_run(rels, N=10, batch_size=10)  # full batch: the closed form is the headline
    assert compare_step(gd, within_horizon=True) == 1  # nothing before its crossing at 2: the first checkpoint
    held = _fake_run({"shadow": {"W_O": [0.01] * 6}}, N=100, batch_size=10)
    assert compare_step(held, within_horizon=True) == 12
    # a run written before sustained horizons (old first-crossing validity_horizon in its summary) is recomputed
    old = _fake_run(rels, N=100, batch_size=10, summary={"validity_horizon": {"shadow": {"W_O": {"20%": 4}}}})
    assert compare_step(old, within_horizon=True) == 8


@pytest.mark.slow
def test_report_on_a_run_written_before_sustained_horizons(run_dir, tmp_path):
    import json
    import shutil

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    summary = json.loads((old / "summary.json").read_text())
    del summary["horizon"]  # as written before the change: first crossings under validity_horizon only
    summary["validity_horizon"] = {"closed_form": {"W_O": {"5%": 1, "20%": 1}}}
    (old / "summary.json").write_text(json.dumps(summary))
    res = build_report(ReportConfig(run=str(old), k=3, within_horizon=True, heatmap_tokens=6))
    html = res.path.read_text(encoding="utf-8")
    assert "written before summary.json recorded sustained horizons" in html
    assert "<b>Headline: the shadow (§5)</b>" in html  # batch 10 of 40 stories: minibatch SGD


def test_planted_recovery_matches_naive_topk(run_dir):
    from leadingterms.training import load_run

    run = load_run(run_dir)
    basis = run.basis()
    vocab = basis.vocab
    planted = [{"kind": "bigram", "a": "bird", "b": "flew"}, {"kind": "bigram", "a": "the", "b": "flew"},
               {"kind": "context", "a": "beach", "b": "shell"}, {"kind": "bigram", "a": "bird", "b": "nope"}]
    rec = planted_recovery(basis, vocab, planted, k=5)
    by = {(r["kind"], r["readout"]): r for r in rec}
    # naive: sort row a of B_bar, top 5
    B = basis.B_bar
    expect = 0
    for a, b in [("bird", "flew"), ("the", "flew")]:
        row = B[vocab.index(a)].tolist()
        top = sorted(range(len(row)), key=lambda j: (-row[j], j))[:5]
        expect += vocab.index(b) in top
    assert by[("bigram", "B̄")]["hits"] == expect and by[("bigram", "B̄")]["total"] == 2
    assert ("bigram", "W_O") not in by  # no learned weights given
    assert by[("context", "Φ̄/π")]["total"] == 1


def test_planted_recovery_reads_every_layer(run_dir):
    from leadingterms.training import load_run

    run = load_run(run_dir)
    basis, weights = run.basis(), run.load_checkpoint().weights()
    vocab = basis.vocab
    planted = [{"kind": "bigram", "a": "bird", "b": "flew"}, {"kind": "bigram", "a": "dog", "b": "barked"},
               {"kind": "context", "a": "beach", "b": "shell"}]
    rec = planted_recovery(basis, vocab, planted, weights=weights, k=5)
    assert [(r["readout"], r["layer"]) for r in rec] == [
        ("B̄", None), ("W_O", None), ("Q̄", None), ("W^(0)", 0), ("W^(1)", 1),
        ("Φ̄/π", None), ("Ḡ", None), ("V^(0)·W_O", 0), ("V^(1)·W_O", 1)]

    def top5(row):  # naive: sort descending, ties by the smaller id
        return sorted(range(len(row)), key=lambda j: (-row[j], j))[:5]

    for l in (0, 1):
        W = weights[f"layers.{l}.W"].double()
        expect = sum(vocab.index(a) in top5(W[vocab.index(b)].tolist()) for a, b in [("bird", "flew"), ("dog", "barked")])
        got = next(r for r in rec if r["readout"] == f"W^({l})")
        assert got["hits"] == expect and got["total"] == 2 and "row b of the learned W^(" + str(l) + ")" in got["description"]
        VW = (weights[f"layers.{l}.V"].double() @ weights["W_O"].double())[vocab.index("beach")].tolist()
        got = next(r for r in rec if r["readout"] == f"V^({l})·W_O")
        assert got["hits"] == int(vocab.index("shell") in top5(VW))


def test_default_tokens(run_dir):
    from leadingterms.training import load_run

    basis = load_run(run_dir).basis()
    vocab = basis.vocab
    planted = [{"kind": "bigram", "a": "bird", "b": "flew"}, {"kind": "context", "a": "beach", "b": "shell"},
               {"kind": "bigram", "a": "fish", "b": "swam"}, {"kind": "bigram", "a": "zzz", "b": "x"}]
    toks = default_tokens(basis, vocab, planted, n_frequent=2, n_planted=3)
    freq = [vocab[i] for i in frequent_ids(basis, 2)]
    assert toks[:2] == freq
    assert [t for t in toks[2:]] == [t for t in ["bird", "beach", "fish"] if t in vocab and t not in freq][:3]
    assert float(basis.Pi[vocab.index(freq[0])]) == float(torch.max(basis.Pi))


@pytest.mark.slow
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    render_in_chromium(run_dir / "report.html", tmp_path, min_images=4)


def test_within_horizon_says_when_no_checkpoint_is_before_the_horizon():
    from leadingterms.report.build import _step_note

    rels = {"closed_form": {"W_O": [0.3] * 6}}
    gd = _fake_run(rels, N=10, batch_size=10)  # the headline closed form crosses for good at step 2
    cfg = ReportConfig(run="r", within_horizon=True)
    assert _step_note(gd, compare_step(gd, within_horizon=True), cfg).startswith("the last checkpoint before")
    del gd.checkpoints[1]  # checkpoints 0, 2, 4, 8, 12: none after step 0 is before step 2
    assert compare_step(gd, within_horizon=True) == 2
    assert _step_note(gd, 2, cfg) == ("the first checkpoint: none is before the headline horizon (sustained "
                                      "relative error above 20% from step 2); training ran to step 12")
