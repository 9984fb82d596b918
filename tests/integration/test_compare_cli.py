"""``leadingterms compare``: a page and JSON over a tiny sweep (and a run with an intervention); errors."""

from __future__ import annotations

import re

import pytest
from helpers import one_line_error, run_cli

from leadingterms.persist import read_json


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory, run_factory):
    """Four learning rates on a small Markov store (V = 12, T = 8, L = 2), 8 steps logged every step; and one
    separate run on the synthetic stories (planted pairs) with an intervention."""
    from fixtures.stores import make_store

    from leadingterms.sweep import SweepConfig, run_sweep

    root = tmp_path_factory.mktemp("cmp")
    make_store(root / "markov", N=24, T=8, V=12)
    run_sweep(SweepConfig(corpora=[str(root / "markov")], lrs=[1.0, 2.0, 4.0, 8.0], batch_sizes=[6],
                          layer_counts=[2], steps=8, log_every=1, out=str(root / "sw"), progress=False))
    other = run_factory("cmp_iv", docs=20, seq_len=12, layers=2, steps=3, intervene_sequences=4)
    return root / "sw", other


@pytest.mark.slow
def test_compare_sweep_and_run(tiny_sweep, tmp_path, capsys):
    sweep, other = tiny_sweep
    out = tmp_path / "cmp"
    rc, stdout, err = run_cli(capsys, "compare", sweep, other, "--out", out, "--heatmap-tokens", 8)
    assert rc == 0, err
    lines = stdout.strip().splitlines()
    assert lines[0] == "corpus B=10 L=2: one learning rate, no horizon to fit"  # the separate run
    # the fitted exponent of each weight kind's headline horizon, 20% first, with the runs it was fitted on
    assert lines[1].startswith("markov B=6 L=2: shadow (§5) horizon 20%, exponent α of s ∝ η^α (theory −1): W_O ")
    assert re.search(r"W_O [+-]\d\.\d\d \(\d/4 runs\)|W_O no fit \(\d/4 runs\)", lines[1]), lines[1]
    assert lines[2].startswith("markov B=6 L=2: shadow (§5) horizon 5%")
    assert lines[-1] == f"wrote {out / 'report.html'} and {out / 'compare.json'} (5 runs)"
    data = read_json(out / "compare.json")
    assert [r["lr"] for r in data["runs"] if r["group"] == "markov B=6 L=2"] == [1.0, 2.0, 4.0, 8.0]
    assert len({r["group"] for r in data["runs"]}) == 2  # the separate run is its own group
    fit = next(f for f in data["fits"] if f["group"] == "markov B=6 L=2" and f["headline"] and f["weight"] == "W_O"
               and f["threshold"] == "5%")
    assert fit["prediction"] == "shadow" and fit["n_runs"] == 4 and fit["exponent"] is not None
    assert fit["exponent"] < 0  # larger steps break the expansion sooner
    assert fit["n_points"] + fit["held"] == 4
    iv = [r for r in data["runs"] if r["intervention"]]
    assert len(iv) == 1 and set(iv[0]["intervention"]["delta_removed"]) >= {"W_O", "layers.1.W"}
    rd = next(r["readouts"] for r in data["runs"] if r["group"].startswith("corpus"))  # the synthetic stories
    assert {r["layer"] for r in rd["planted"]} == {None, 0, 1}  # every layer, not only layer 0
    assert {o["learned"] for o in rd["overlap"]} >= {"W_O", "V^(0)", "V^(1)", "W^(1)"}
    html = (out / "report.html").read_text(encoding="utf-8")
    for sid in ("runs", "horizon", "tracking", "intervention", "readouts"):
        assert f'<section id="{sid}">' in html
    assert "α (steps ∝ η^α)" in html and "Headline horizons per run" in html
    assert html.count("data:image/png;base64,") == 4 and "<script" not in html and 'src="http' not in html
    for stem in ("horizon_scaling", "tracking_overlay", "loss_overlay", "layer_readouts"):
        assert (out / "figures" / f"{stem}.png").is_file() and (out / "figures" / f"{stem}.svg").is_file()


def test_compare_errors_one_line(tiny_sweep, tmp_path, capsys):
    one_line_error(capsys, "compare", tmp_path / "nope", "--out", tmp_path / "o", match="run directory not found")
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, "compare", tmp_path / "empty", "--out", tmp_path / "o",
                   match="neither a run folder (config.json) nor a sweep folder")
    one_line_error(capsys, "compare", tiny_sweep[0], "--out", tmp_path / "o", "--k", 0, match="--k must be a positive")
    assert run_cli(capsys, "compare", "--out", tmp_path / "o")[0] == 2  # no run given
    assert not (tmp_path / "o").exists()


def test_compare_into_a_run_folder_is_refused_without_force(tiny_sweep, tmp_path, capsys):
    """--out naming a run folder would replace its report.html and figures: refused, byte for byte untouched."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_sweep[1], run)
    before = {str(p): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    one_line_error(capsys, "compare", tiny_sweep[0], "--out", run,
                   match="(it holds 'checkpoints') and is not a comparison; pass --force")
    assert {str(p): p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # a comparison's own folder is rewritten without --force
    assert run_cli(capsys, "compare", tiny_sweep[0], "--out", tmp_path / "c")[0] == 0
    assert run_cli(capsys, "compare", tiny_sweep[0], "--out", tmp_path / "c")[0] == 0
