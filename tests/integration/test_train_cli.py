"""``leadingterms train`` end to end through the CLI: outputs, resume, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import one_line_error

from leadingterms.cli import main
from leadingterms.corpus.store import write_store


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    tok = rng.integers(0, 6, size=(10, 7))
    tok[:, 1::2] = (tok[:, 0::2][:, : tok[:, 1::2].shape[1]] + 1) % 6  # strong bigrams a -> a+1
    write_store(tmp_path / "corpus", tok, [f"t{i}" for i in range(6)], {})
    return tmp_path / "corpus"


def args(corpus, out, *extra):
    return ["train", "--corpus", str(corpus), "--out", str(out), "--layers", "2", "--lr", "0.01",
            "--batch-size", "4", "--steps", "6", "--log-every", "3", "--dtype", "float64", *extra]


def test_train_writes_run_and_resumes_with_saved_options(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(args(corpus, out, "--checkpoint-every", "1", "--keep-last", "10")) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "closed_form" in printed and "steps/s" in printed
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 3, 6]
    assert {"step", "epoch", "loss", "val_loss", "closed_form", "shadow", "second_order", "layer_spread"} <= set(rows[-1])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["steps_per_s"] > 0 and "validity_horizon" in summary
    # the headline horizon and why, in plain words (batch 4 of the corpus: minibatch SGD -> the shadow)
    assert summary["horizon"]["headline"] == "shadow" and summary["horizon"]["regime"] == "minibatch SGD"
    assert "headline shadow (§5), minibatch SGD: W_O " in printed and "  why shadow (§5): minibatch SGD" in printed
    assert (out / "checkpoints" / "step_000006.safetensors").is_file() and (out / "basis").is_dir()
    # --resume with only the new length: the other options come from the saved run
    assert main(["train", "--out", str(out), "--resume", "--steps", "9"]) == 0
    assert "resumed from step 6" in capsys.readouterr().out
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 3, 6, 9]
    # every option, --keep-last included, came from the saved run: no checkpoint it kept was pruned
    assert json.loads((out / "config.json").read_text())["config"]["keep_last"] == 10
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*.safetensors")) == [
        f"step_{s:06d}.safetensors" for s in range(10)]


def test_adam_is_flagged(corpus, tmp_path, capsys):
    assert main(args(corpus, tmp_path / "run", "--optimizer", "adam", "--track", "closed_form")) == 0
    captured = capsys.readouterr()
    assert "outside the theory" in captured.err and "note:" in captured.err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["theory_caveats"] and summary["final"]["shadow"] is None


@pytest.mark.parametrize("extra,match", [
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--lr", "0"], "--lr must be a finite number > 0"),
    (["--batch-size", "11"], "exceeds the 10 training sequences"),
    (["--init", "normal:x"], "bad --init"),
    (["--track", "closed_form,bogus"], "--track must be one of closed_form, shadow, second_order, got 'bogus'"),
    (["--keep-last", "-1"], "--keep-last"),
])
def test_bad_sizes(corpus, tmp_path, capsys, extra, match):
    one_line_error(capsys, *args(corpus, tmp_path / "run", *extra), match=match)


def test_missing_corpus_and_missing_options(tmp_path, capsys):
    one_line_error(capsys, *args(tmp_path / "nope", tmp_path / "run"), match="token store not found")
    one_line_error(capsys, "train", "--out", str(tmp_path / "r2"), "--lr", "0.1", match="--corpus, --layers, --batch-size are required")
    one_line_error(capsys, "train", "--out", str(tmp_path / "r3"), "--resume",
                   match=f"--resume: {tmp_path / 'r3'} holds no run to resume (no config.json)")
    assert not (tmp_path / "r3").exists()


def test_existing_run_mismatch_and_divergence(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(args(corpus, out, "--track", "none")) == 0
    capsys.readouterr()
    one_line_error(capsys, *args(corpus, out, "--track", "none"), match="already exists")
    one_line_error(capsys, *args(corpus, out, "--track", "none", "--resume", "--seed", "3"), match="config differs")
    other = tmp_path / "other"
    write_store(other, np.zeros((10, 7), dtype=np.int64), [f"t{i}" for i in range(6)], {})
    one_line_error(capsys, *args(other, out, "--track", "none", "--resume"), match="trained on corpus")
    one_line_error(capsys, *args(corpus, tmp_path / "div", "--lr", "1e30", "--init", "normal:1", "--dtype",
                                "float32", "--track", "none", "--log-every", "1"), match="diverged at step")


def test_estimate_on_stderr_and_dry_run(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(args(corpus, out, "--dry-run")) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith("estimate: ") and "s per step" in lines[0] and "peak memory" in lines[1]
    assert lines[-1] == f"dry run: nothing written to {out}" and not out.exists()
    assert main(args(corpus, out)) == 0
    captured = capsys.readouterr()
    notes = [l for l in captured.err.splitlines() if l.startswith("leadingterms train: note: estimate: ")]
    assert len(notes) == 3
    assert "checkpoints:" in captured.out and "written" in captured.out


def test_refusals_are_one_line_and_write_nothing(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LEADINGTERMS_MAX_MEMORY_SHARE", "1e-9")
    one_line_error(capsys, *args(corpus, tmp_path / "run"), match="needs about")
    monkeypatch.delenv("LEADINGTERMS_MAX_MEMORY_SHARE")
    one_line_error(capsys, *args(corpus, tmp_path / "run", "--precision", "bf16"), match="--dtype float32")
    assert not (tmp_path / "run").exists()


def test_the_runs_own_basis_is_the_one_stats_makes(corpus, tmp_path, capsys):
    """RUN/basis is made by `stats` itself (the same shards): its tensors are those of `leadingterms stats`, bit
    for bit, and a resumed run reuses it."""
    from safetensors.torch import load_file

    out = tmp_path / "run"
    assert main(args(corpus, out, "--track", "closed_form")) == 0
    assert main(["stats", "--corpus", str(corpus), "--out", str(tmp_path / "b")]) == 0
    own, made = load_file(out / "basis" / "basis.safetensors"), load_file(tmp_path / "b" / "basis.safetensors")
    assert own.keys() == made.keys() and all(torch.equal(own[k], made[k]) for k in own)
    before = (out / "basis" / "basis.json").stat().st_mtime_ns
    assert main(["train", "--out", str(out), "--resume", "--steps", "9"]) == 0
    assert (out / "basis" / "basis.json").stat().st_mtime_ns == before  # reused, not recomputed
    capsys.readouterr()
