"""``leadingterms stats``: files, names, shapes, reuse, top-k, and one-line errors (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import one_line_error

from leadingterms.basis import BASIS_TENSORS, EXTRA_TENSORS, compute_basis, load_basis
from leadingterms.cli import main
from leadingterms.corpus.store import write_store
from leadingterms.persist import load_tensors

V_, T_ = 7, 6


@pytest.fixture
def store_dir(tmp_path):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, V_, size=(10, T_ + 1))
    d = tmp_path / "corpus"
    write_store(d, tokens, [f"w{i}" for i in range(V_)], {"source": "test"})
    return d


def test_stats_writes_named_tensors_and_metadata(store_dir, tmp_path, capsys):
    out = tmp_path / "basis"
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "V=7" in printed and "; 8 shards, in-process, cpu;" in printed  # 10 rows: 8 shards (of 1-2 rows)
    tensors, _ = load_tensors(out / "basis.safetensors")
    assert set(tensors) == set(BASIS_TENSORS)
    for name in ("B_bar", "Phi_bar", "Q_bar", "A_bar"):
        assert tuple(tensors[name].shape) == (V_, V_)
    assert tuple(tensors["Delta"].shape) == (T_,) and tuple(tensors["Pi"].shape) == (V_,)
    assert all(t.dtype == torch.float64 for t in tensors.values())
    meta = json.loads((out / "basis.json").read_text())
    from leadingterms.corpus.store import load_store

    store = load_store(store_dir)
    assert meta["corpus_hash"] == store.content_hash
    assert (meta["N"], meta["T"], meta["V"], meta["dtype"]) == (10, T_, V_, "float64")
    assert meta["vocab"] == store.vocab
    assert meta["seconds"] >= 0 and meta["peak_memory_bytes"] > 0
    ref = compute_basis(store.tokens, V_, progress=False)
    for name in ("B_bar", "Phi_bar", "Q_bar", "A_bar", "Delta", "Pi"):
        want = getattr(ref, name)
        assert (tensors[name] - want).norm() <= 1e-12 * want.norm(), name
    # same corpus and settings: reused; --force recomputes
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out), "--force"]) == 0
    assert "up to date" not in capsys.readouterr().out


def test_stats_summary_counts_one_shard_in_the_singular(tmp_path, capsys):
    d = tmp_path / "corpus"
    write_store(d, np.arange(T_ + 1)[None, :] % V_, [f"w{i}" for i in range(V_)], {"source": "test"})
    assert main(["stats", "--corpus", str(d), "--out", str(tmp_path / "basis")]) == 0
    assert "; 1 shard, in-process, cpu;" in capsys.readouterr().out


def test_stats_extras_float32_and_top_k(store_dir, tmp_path, capsys):
    out = tmp_path / "basis"
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out), "--extras", "--dtype", "float32",
                 "--top-k", "3"]) == 0
    tensors, _ = load_tensors(out / "basis.safetensors")
    assert set(tensors) == set(BASIS_TENSORS) | set(EXTRA_TENSORS)
    assert tuple(tensors["G_bar"].shape) == (4, 4) and tensors["G_bar"].dtype == torch.float32
    meta = json.loads((out / "basis.json").read_text())
    assert meta["top_k"] == 3 and len(meta["token_ids"]) == 4 and meta["token_ids"][-1] == -1
    assert meta["vocab"][-1] == "<other>"
    # a different setting is not reused, and replaces the basis only with --force (issue 10)
    before = (out / "basis.safetensors").read_bytes()
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out)]) == 2
    assert "made from other inputs (dtype 'float32' there" in capsys.readouterr().err
    assert (out / "basis.safetensors").read_bytes() == before
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out), "--force"]) == 0
    assert "up to date" not in capsys.readouterr().out
    assert load_basis(out).V == V_
    # --top-k K >= V keeps every token: the same basis, reused as such, with a note
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out), "--top-k", str(V_)]) == 0
    captured = capsys.readouterr()
    assert "up to date" in captured.out
    assert captured.err.strip() == f"leadingterms stats: note: --top-k {V_} keeps every one of the store's V={V_} " \
                                   "tokens: the full basis"


def test_corrupt_existing_basis_is_recomputed(store_dir, tmp_path, capsys):
    out = tmp_path / "basis"
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out)]) == 0
    (out / "basis.safetensors").write_bytes(b"junk")
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out)]) == 0
    assert load_basis(out).V == V_


@pytest.mark.parametrize("case", ["missing", "corrupt_tokens", "out_of_range", "bad_top_k", "bad_dtype"])
def test_bad_inputs_exit_2_with_one_line(case, store_dir, tmp_path, capsys):
    args = ["stats", "--corpus", str(store_dir), "--out", str(tmp_path / "b")]
    if case == "missing":
        args[2] = str(tmp_path / "nope")
    elif case == "corrupt_tokens":
        (store_dir / "tokens.npy").write_bytes(b"not an npy file")
    elif case == "out_of_range":
        tokens = np.full((10, T_ + 1), V_ + 3, dtype=np.uint16)
        np.save(store_dir / "tokens.npy", tokens)
    elif case == "bad_top_k":
        args += ["--top-k", "0"]
    elif case == "bad_dtype":
        args += ["--dtype", "float16"]
    one_line_error(capsys, *args)


# ------------------------------------------------------------------ issue 10


def test_stats_validates_out_before_computing(store_dir, tmp_path, capsys, monkeypatch):
    """stats --out EXISTING_FILE failed after computing; now before any work (the kernel is never called)."""

    from leadingterms.basis import runner

    monkeypatch.setattr(runner, "reduce_basis", lambda *a, **k: pytest.fail("computed before validating"))
    f = tmp_path / "file"
    f.write_text("mine")
    one_line_error(capsys, "stats", "--corpus", store_dir, "--out", f, match="is not a folder")
    assert f.read_text() == "mine"


def test_stats_second_writer_is_refused(store_dir, tmp_path, capsys):
    """Concurrent writers: while another process writes OUT, stats refuses in one line naming the holder."""

    from leadingterms.locks import output_lock

    out = tmp_path / "basis"
    with output_lock(out, what="basis folder"):
        one_line_error(capsys, "stats", "--corpus", store_dir, "--out", out, match="is being written by process")
    assert not (out / "basis.json").exists()
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out)]) == 0


def test_stale_store_is_not_reused(store_dir, tmp_path, capsys):
    """Editing tokens.npy under an unchanged corpus.json no longer makes stats reuse a stale basis."""

    out = tmp_path / "basis"
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out)]) == 0
    capsys.readouterr()
    before = (out / "basis.safetensors").read_bytes()
    tok = np.load(store_dir / "tokens.npy")
    tok[0, 0] = (int(tok[0, 0]) + 1) % V_
    np.save(store_dir / "tokens.npy", tok)
    one_line_error(capsys, "stats", "--corpus", store_dir, "--out", out, match="tokens.npy changed after it was written")
    assert (out / "basis.safetensors").read_bytes() == before


def test_a_warm_up_that_fails_leaves_no_trace(store_dir, tmp_path, capsys, monkeypatch):
    """stats loads the compiled kernels in a thread while it reads the store; if that fails, the tasks load
    them (or fail with their own error): no traceback from the thread, the same basis."""
    from leadingterms.basis import native

    ref = tmp_path / "ref"
    assert main(["stats", "--corpus", str(store_dir), "--out", str(ref)]) == 0

    def broken(*_):
        raise RuntimeError("no cache")

    monkeypatch.setattr(native, "warm", broken)
    out = tmp_path / "basis"
    assert main(["stats", "--corpus", str(store_dir), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "no cache" not in captured.err
    got, want = load_basis(out), load_basis(ref)
    for name in BASIS_TENSORS:
        assert torch.equal(getattr(got, name), getattr(want, name)), name
