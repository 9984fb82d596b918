"""The checkpoint policy (bounded disk), retention, the background writer."""

from __future__ import annotations

import pytest
import torch

from leadingterms.errors import LeadingTermsError
from leadingterms.training.checkpoints import (
    CheckpointWriter,
    checkpoint_bytes,
    checkpoint_due,
    checkpoint_meta,
    early_steps,
    holds_shadow,
    list_checkpoints,
    prune_checkpoints,
    save_checkpoint,
)


def test_policy_steps():
    assert early_steps(6) == [0, 1, 4, 16, 64, 256] and early_steps(1) == [0] and early_steps(0) == []
    due = [s for s in range(0, 301) if checkpoint_due(s, 250, every=100, early=6)]
    assert due == [0, 1, 4, 16, 64, 100, 200, 250, 256, 300]  # > total (250) is never reached
    # the shadow goes only with the periodic and the last checkpoints (the early ones are replayed)
    assert [s for s in due if s <= 250 and holds_shadow(s, 250, 100)] == [100, 200, 250]


def test_checkpoint_retention(tmp_path):
    for s in range(0, 21):
        save_checkpoint(tmp_path, s, {"model": {"W_O": torch.full((2, 2), float(s))}}, {"x": s})
        prune_checkpoints(tmp_path, keep_last=2, early=4, protect=s)
    assert list_checkpoints(tmp_path) == [0, 1, 4, 16, 19, 20]
    # a checkpoint whose JSON is missing (killed between the two writes) does not count
    (tmp_path / "checkpoints" / "step_000020.json").unlink()
    assert list_checkpoints(tmp_path)[-1] == 19


@pytest.mark.parametrize("total", [11, 1000, 20_000])
def test_default_policy_bounds_disk_however_long(tmp_path, total):
    """Defaults (early 6, every 100, keep 3): at most 9 checkpoints on disk at any time, the last included."""
    for s in range(total + 1):
        if checkpoint_due(s, total, every=100, early=6):
            save_checkpoint(tmp_path, s, {"model": {"W_O": torch.zeros(1)}}, {})
            prune_checkpoints(tmp_path, keep_last=3, early=6, protect=s)
            assert len(list_checkpoints(tmp_path)) <= 9
    kept = list_checkpoints(tmp_path)
    early = [k for k in (0, 1, 4, 16, 64, 256) if k <= total]
    assert kept[-1] == total and set(early) <= set(kept)


def test_writer_writes_in_background_and_counts_bytes(tmp_path):
    w = CheckpointWriter(tmp_path, keep_last=1, early=2)
    t = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    for s in (0, 1, 5, 7):
        w.submit(s, {"model": {"W_O": t}, "shadow": {"W": t} if s == 7 else {}}, {"x": s})
        t += 1  # the writer holds its own copy
    w.wait()
    assert list_checkpoints(tmp_path) == [0, 1, 7]
    assert w.bytes_written > checkpoint_bytes(tmp_path) > 0
    assert checkpoint_meta(tmp_path, 7)["shadow"] is True and checkpoint_meta(tmp_path, 1)["shadow"] is False
    from leadingterms.training.checkpoints import load_checkpoint_raw

    for step, plus in ((0, 0), (1, 1), (7, 3)):  # each file holds its own step's values
        groups, _ = load_checkpoint_raw(tmp_path, step)
        assert torch.equal(groups["model"]["W_O"], torch.arange(6, dtype=torch.float64).reshape(2, 3) + plus)


def test_writer_reuses_its_copy_buffers_once_the_previous_write_is_done(tmp_path, monkeypatch):
    import leadingterms.training.checkpoints as ck

    w = CheckpointWriter(tmp_path, keep_last=5, early=5)
    seen: list[tuple[int, float]] = []
    real = ck.save_checkpoint

    def slow_save(run_dir, step, tensors, meta):
        import time

        time.sleep(0.05)  # the next submit must wait for this write before reusing the buffer
        seen.append((tensors["model"]["W_O"].data_ptr(), float(tensors["model"]["W_O"][0])))
        return real(run_dir, step, tensors, meta)

    monkeypatch.setattr(ck, "save_checkpoint", slow_save)
    t = torch.zeros(1000)
    for s in range(4):
        t.fill_(s)
        w.submit(s, {"model": {"W_O": t}}, {})
    w.wait()
    assert [v for _, v in seen] == [0.0, 1.0, 2.0, 3.0]
    assert len({p for p, _ in seen}) == 1  # one buffer, allocated once


def test_writer_error_surfaces(tmp_path):
    (tmp_path / "checkpoints").write_text("not a folder")
    w = CheckpointWriter(tmp_path, keep_last=1, early=0)
    w.submit(3, {"model": {"W_O": torch.zeros(2)}}, {})
    with pytest.raises(LeadingTermsError, match="cannot write"):
        w.wait()
    w.wait()  # raised once


def test_load_checkpoint_verifies_header_finite_and_owner(tmp_path):
    import shutil

    from leadingterms.training.checkpoints import checkpoint_paths, load_checkpoint_raw

    for s in (1, 2):
        save_checkpoint(tmp_path, s, {"model": {"W_O": torch.ones(2, 2) * s}}, {"run_id": "a", "corpus_hash": "h"})
    groups, meta = load_checkpoint_raw(tmp_path, 2, expect={"run_id": "a", "corpus_hash": "h"})
    assert meta["run_id"] == "a" and torch.equal(groups["model"]["W_O"], torch.ones(2, 2) * 2)
    with pytest.raises(LeadingTermsError, match="another run"):
        load_checkpoint_raw(tmp_path, 2, expect={"run_id": "b"})
    shutil.copy2(checkpoint_paths(tmp_path, 1)[0], checkpoint_paths(tmp_path, 2)[0])  # tensor file swapped
    with pytest.raises(LeadingTermsError, match="does not match its metadata"):
        load_checkpoint_raw(tmp_path, 2)
    save_checkpoint(tmp_path, 3, {"model": {"W_O": torch.tensor([1.0, float("inf")])}}, {})
    with pytest.raises(LeadingTermsError, match="NaN or infinite"):
        load_checkpoint_raw(tmp_path, 3)


def test_tensor_file_removed_when_its_json_cannot_be_written(tmp_path, monkeypatch):
    from leadingterms.training import checkpoints as ck

    def full(*a, **k):
        raise LeadingTermsError("cannot write x: the disk is full")

    monkeypatch.setattr(ck, "write_json", full)
    with pytest.raises(LeadingTermsError, match="disk is full"):
        save_checkpoint(tmp_path, 5, {"model": {"W_O": torch.zeros(2)}}, {})
    assert not any((tmp_path / "checkpoints").iterdir())


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view({4: torch.int32, 8: torch.int64}[t.element_size()])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mostly_zero_rows_are_not_written_and_load_back_bit_for_bit(tmp_path, dtype):
    from safetensors import safe_open

    from leadingterms.training.checkpoints import checkpoint_paths, load_checkpoint_raw

    V = 200
    g = torch.Generator().manual_seed(0)
    sparse = torch.zeros(V, V, dtype=dtype)
    sparse[[3, 50, 51, 199]] = torch.randn(4, V, generator=g, dtype=dtype)
    sparse[7, 9] = -0.0  # a row whose only bit set is a sign: kept, and restored as -0.0
    half = torch.randn(V, V, generator=g, dtype=dtype)
    half[::2] = 0.0  # half its rows zero: stored as its other half (at most ROW_SPARSE_MAX of them nonzero)
    few_zero = torch.randn(V, V, generator=g, dtype=dtype)
    few_zero[:10] = 0.0  # 5% zero rows: stored whole
    tensors = {"model": {"W_O": sparse, "layers.0.V": torch.zeros(V, V, dtype=dtype), "layers.0.W": few_zero,
                         "layers.0.P": torch.zeros(V, dtype=dtype)},
               "shadow": {"V": half}}
    written = save_checkpoint(tmp_path, 4, tensors, {"run_id": "a"})
    with safe_open(checkpoint_paths(tmp_path, 4)[0], "pt") as f:
        stored = {k: f.get_slice(k).get_shape() for k in f.keys()}  # noqa: SIM118
    assert stored["model.W_O"] == [5, V] and stored["rows.model.W_O"] == [5]
    assert stored["model.layers.0.V"] == [0, V] and stored["model.layers.0.W"] == [V, V]
    assert stored["shadow.V"] == [V // 2, V]
    assert written < (3 * V * V + V) * sparse.element_size()  # W_O, V and half of shadow V not written
    groups, meta = load_checkpoint_raw(tmp_path, 4)
    assert meta["row_sparse"] == {"model.W_O": V, "model.layers.0.V": V, "shadow.V": V}
    for group, d in tensors.items():
        for name, t in d.items():
            back = groups[group][name]
            assert back.dtype == t.dtype and torch.equal(_bits(back), _bits(t)), (group, name)
    assert _bits(groups["model"]["W_O"])[7, 9] != 0  # -0.0 survived


def test_stored_rows_that_do_not_fit_their_matrix_are_refused(tmp_path):
    from leadingterms.persist import load_tensors, save_tensors
    from leadingterms.training.checkpoints import checkpoint_paths, load_checkpoint_raw

    w = torch.zeros(6, 3)
    w[[1, 4]] = 1.0
    save_checkpoint(tmp_path, 1, {"model": {"W_O": w}}, {})
    tpath = checkpoint_paths(tmp_path, 1)[0]
    flat, header = load_tensors(tpath)
    for bad in (torch.tensor([1, 6]), torch.tensor([4, 1]), torch.tensor([1]), torch.tensor([-1, 4])):
        save_tensors(tpath, {**flat, "rows.model.W_O": bad}, metadata=header)
        with pytest.raises(LeadingTermsError, match="do not fit its shape"):
            load_checkpoint_raw(tmp_path, 1)
    save_tensors(tpath, {**flat, "rows.model.V": torch.tensor([0])}, metadata=header)  # of no stored matrix
    with pytest.raises(LeadingTermsError, match="row indices of no stored matrix"):
        load_checkpoint_raw(tmp_path, 1)
