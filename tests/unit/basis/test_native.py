"""The compiled CPU kernels (leadingterms.basis.native) against the torch kernel on chunks (what GPUs run).

The sums into every cell are added in the same order with the same operations, so bigram counts,
c, Φ, Aᵀ and Q must have the same bits; Delta is summed in another order. Both kernels are also
compared with the naive dense reference in test_basis_stats.py (fixture ``kernel``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from leadingterms.basis import native, stats
from leadingterms.basis._tokens import Source

pytestmark = pytest.mark.skipif(not native.available(), reason="Numba is not installed")
CPU = torch.device("cpu")
EXACT = ("C", "c", "Phi", "A_t")


def sums(tokens: np.ndarray, V: int, dtype: torch.dtype, rows: int, M: torch.Tensor, torch_kernel: bool,
         monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as m:
        if torch_kernel:
            m.setattr(native, "available", lambda: False)
        src = Source.build(tokens, V, device=CPU)
        s1 = stats.bigram_sums(src, dtype, rows)
        Mc = stats._centred_block(M, src, dtype)
        s2 = stats.attention_sums(src, Mc, dtype, rows)
    return s1, s2


def corpus(seed: int, V: int, present: int, N: int, T: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    ids = g.choice(V, size=present, replace=False)
    return ids[g.integers(0, present, size=(N, T + 1))]


@pytest.mark.parametrize("layout", ["separate", "interleaved"])  # pass 2's M' and Q: two arrays or one
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("V,present,N,T,rows", [(7, 7, 9, 5, 4), (50, 12, 30, 17, 7), (300, 290, 40, 64, 16)])
def test_same_bits_as_the_torch_kernel(layout, dtype, V, present, N, T, rows, monkeypatch):
    monkeypatch.setattr(native, "INTERLEAVE_PAIRS_PER_CELL", 0 if layout == "interleaved" else 10**9)
    tokens = corpus(V, V, present, N, T)
    M = torch.from_numpy(np.random.default_rng(1).standard_normal((V, V)))
    n1, n2 = sums(tokens, V, dtype, rows, M, False, monkeypatch)
    t1, t2 = sums(tokens, V, dtype, rows, M, True, monkeypatch)
    for name in EXACT:
        a, b = getattr(n1, name), getattr(t1, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert torch.equal(n2.Q, t2.Q)
    tol = 1e-13 if dtype == torch.float64 else 1e-5
    scale = float(t2.Q.abs().max())  # Delta's terms are K entries, of Q's scale; Delta itself can cancel
    assert float((n2.Delta - t2.Delta).abs().max()) <= tol * scale


def test_rows_per_call_do_not_change_the_sums(monkeypatch):
    tokens, V = corpus(3, 40, 30, 25, 12), 40
    M = torch.from_numpy(np.random.default_rng(2).standard_normal((V, V)))
    one = sums(tokens, V, torch.float64, 1, M, False, monkeypatch)
    all_ = sums(tokens, V, torch.float64, 25, M, False, monkeypatch)
    for name in EXACT:
        assert torch.equal(getattr(one[0], name), getattr(all_[0], name)), name
    assert torch.equal(one[1].Q, all_[1].Q)
    assert float((one[1].Delta - all_[1].Delta).abs().max()) <= 1e-14 * float(all_[1].Q.abs().max())


def test_pass_2_interleaves_only_for_many_rows_per_cell():
    """The (M', Q) scratch costs a few passes over 2·Vc² numbers: taken when a task has many pairs per cell
    and the scratch fits the chunk budget (a 3001-token shard of the 101 MB store), not for a small
    corpus over a large vocabulary."""
    pairs = 200 * 201 // 2
    assert native.NativeRows(200, 3001, torch.float64, stats.FRESH, 14546).interleave
    assert not native.NativeRows(200, 9103, torch.float64, stats.FRESH, 2419).interleave
    assert not native.NativeRows(200, 9103, torch.float64, stats.FRESH, 10**6).interleave  # scratch too large
    assert not native.NativeRows(200, 3001, torch.float64, stats.FRESH, 16 * 3001 * 3001 // pairs - 1).interleave


def test_the_kernels_release_the_gil():
    """--workers N runs its tasks as threads of one process: the kernels must run without the GIL."""
    compiled = native._compiled()
    assert compiled is not None
    for dispatcher in compiled:
        assert dispatcher.targetoptions.get("nogil") is True


def test_which_kernel_runs_where(monkeypatch):
    assert stats.kernel_name("cpu") == "native"
    assert stats.kernel_name("cuda:0") == "torch"  # the torch kernel on GPUs (no GPU needed to ask)
    monkeypatch.setattr(native, "available", lambda: False)
    assert stats.kernel_name("cpu") == "torch"
