"""``leadingterms predict``: output file, metadata, bounds printout, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import one_line_error
from reference.naive import NaiveBasis, markov_corpus

from leadingterms.cli import main
from leadingterms.persist import load_tensors
from leadingterms.predict import paper_bounds
from leadingterms.theory import c_s

V_, T_ = 9, 5


@pytest.fixture(scope="module")
def corpus():
    return markov_corpus(V_, T_, 16, seed=7)


@pytest.fixture(scope="module")
def stats_dir(tmp_path_factory, corpus) -> Path:
    from leadingterms.basis import compute_basis, save_basis

    d = tmp_path_factory.mktemp("stats")
    save_basis(d, compute_basis(corpus, V_, vocab=[f"w{i}" for i in range(V_)], progress=False))
    return d


@pytest.mark.parametrize("order", [1, 2])
def test_predict_writes_weights_and_metadata(stats_dir, corpus, tmp_path, capsys, order) -> None:
    out = tmp_path / "pred.safetensors"
    rc = main(["predict", "--stats", str(stats_dir), "--steps", "7", "--lr", "0.01", "--layers", "2",
               "--order", str(order), "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr()
    assert "bound" in printed.out and "loose" in printed.err
    tensors, meta = load_tensors(out)
    assert set(tensors) == {"W_O"} | {f"layers.{l}.{k}" for l in range(2) for k in "WVP"}
    assert meta["steps"] == 7 and meta["lr"] == 0.01 and meta["layers"] == 2 and meta["order"] == order
    assert meta["bounds"] == pytest.approx(paper_bounds(7, 0.01, T_))
    assert "corpus_hash" in meta
    ref = NaiveBasis(corpus, V_)  # independent reference for the written weights
    W_O = tensors["W_O"].to(torch.float64)
    expect = 7 * 0.01 * ref.B_bar
    tol = 1e-10 if order == 1 else 0.02
    assert float(torch.linalg.vector_norm(W_O - expect) / torch.linalg.vector_norm(expect)) < tol
    W1 = tensors["layers.1.W"].to(torch.float64)
    expect_W = c_s(7) * 1e-8 * ref.Q_bar
    assert float(torch.linalg.vector_norm(W1 - expect_W) / torch.linalg.vector_norm(expect_W)) < 1e-10


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--steps", "0", "--lr", "0.1", "--layers", "1"], "steps"),
        (["--steps", "3", "--lr", "0", "--layers", "1"], "--lr must be a finite number > 0"),
        (["--steps", "3", "--lr", "-0.5", "--layers", "1"], "--lr must be a finite number > 0"),
        (["--steps", "3", "--lr", "0.1", "--layers", "0"], "layers"),
    ],
)
def test_predict_bad_numbers(stats_dir, tmp_path, capsys, args, needle) -> None:
    out = tmp_path / "x.safetensors"
    assert needle in one_line_error(capsys, "predict", "--stats", str(stats_dir), *args, "--out", str(out))
    assert not out.exists()


def test_predict_missing_and_corrupt_stats(tmp_path, capsys) -> None:
    out = tmp_path / "x.safetensors"
    base = ["--steps", "3", "--lr", "0.1", "--layers", "1", "--out", str(out)]
    assert "not found" in one_line_error(capsys, "predict", "--stats", str(tmp_path / "nope"), *base)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "basis.safetensors").write_bytes(b"not a safetensors file")
    (bad / "basis.json").write_text("{corrupt")
    one_line_error(capsys, "predict", "--stats", str(bad), *base)
    assert not out.exists()


@pytest.mark.parametrize("device", ["auto", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_predict_device_gives_the_same_weights(stats_dir, tmp_path, capsys, device) -> None:
    base = ["predict", "--stats", str(stats_dir), "--steps", "5", "--lr", "0.05", "--layers", "2", "--order", "2"]
    assert main([*base, "--out", str(tmp_path / "cpu.safetensors")]) == 0
    assert main([*base, "--device", device, "--out", str(tmp_path / "dev.safetensors")]) == 0
    a, _ = load_tensors(tmp_path / "cpu.safetensors")
    b, _ = load_tensors(tmp_path / "dev.safetensors")
    for k, t in a.items():
        assert float(torch.linalg.vector_norm(b[k] - t) / torch.linalg.vector_norm(t)) < 1e-12, k


# ------------------------------------------------------------------ issue 10


@pytest.mark.parametrize("args", [["--lr", "1e80"], ["--lr", "1e308", "--order", "2"], ["--lr", "1e200"],
                                  ["--steps", "1000000000000", "--lr", "1e30", "--order", "2"]])
def test_predict_overflow_is_one_line(stats_dir, tmp_path, capsys, args) -> None:
    """The OverflowError tracebacks at huge --lr: one line, nothing written."""

    base = {"--steps": "3", "--lr": "0.1"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    out = tmp_path / "p.safetensors"
    one_line_error(capsys, "predict", "--stats", stats_dir, *[x for kv in base.items() for x in kv], "--layers", "1",
             "--out", out, match="overflows")
    assert not out.exists()


def test_predict_memory_budget_counts_the_layers(stats_dir, tmp_path, capsys, monkeypatch) -> None:
    """predict --layers 3000 / 10000 (killed by the kernel before): refused before allocating, naming layers."""

    from leadingterms import budget

    monkeypatch.setattr(budget, "available_memory_bytes", lambda: 10 * 2**20)  # 10 MiB
    out = tmp_path / "p.safetensors"
    line = one_line_error(capsys, "predict", "--stats", stats_dir, "--steps", "3", "--lr", "0.1", "--layers", "10000",
                    "--out", out, match="predicting 10000 layers at V=9 needs about")
    assert "lower --layers" in line and not out.exists()
    assert main(["predict", "--stats", str(stats_dir), "--steps", "3", "--lr", "0.1", "--layers", "2",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    monkeypatch.setenv("LEADINGTERMS_MAX_MEMORY_SHARE", "abc")
    one_line_error(capsys, "predict", "--stats", stats_dir, "--steps", "3", "--lr", "0.1", "--layers", "2",
             "--out", tmp_path / "q.safetensors", match="LEADINGTERMS_MAX_MEMORY_SHARE='abc' must be a number")


def test_predict_overwrite_policy(stats_dir, tmp_path, capsys) -> None:
    """One overwrite policy: other predictions or a foreign file are replaced only with --force."""

    out = tmp_path / "p.safetensors"
    args = ["predict", "--stats", stats_dir, "--steps", "3", "--lr", "0.1", "--layers", "1", "--out", out]
    assert main([str(a) for a in args]) == 0
    capsys.readouterr()
    assert main([str(a) for a in args]) == 0  # the same inputs: rewritten, same bytes
    capsys.readouterr()
    before = out.read_bytes()
    one_line_error(capsys, *args[:-4], "--layers", "2", "--out", out, match="holds another prediction (layers 1 there")
    assert out.read_bytes() == before
    assert main([str(a) for a in args[:-4]] + ["--layers", "2", "--out", str(out), "--force"]) == 0
    capsys.readouterr()
    foreign = tmp_path / "notes.safetensors"
    foreign.write_text("my notes")
    one_line_error(capsys, *args[:-2], "--out", foreign, match="is not a prediction file")
    assert foreign.read_text() == "my notes"
    one_line_error(capsys, *args[:-2], "--out", tmp_path, match="is a directory")
    # never its own input, even with --force
    before = (stats_dir / "basis.safetensors").read_bytes()
    one_line_error(capsys, *args[:-2], "--out", stats_dir / "basis.safetensors", "--force",
                   match="is the basis it is computed from")
    assert (stats_dir / "basis.safetensors").read_bytes() == before
