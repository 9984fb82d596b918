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


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("ids", ["16 bits", "32 bits"])  # 32 bits: a vocabulary of over 65536 tokens
@pytest.mark.parametrize("V,present,N,T,rows", [(7, 7, 9, 5, 4), (50, 12, 30, 17, 7), (300, 290, 40, 64, 16)])
def test_same_bits_as_the_torch_kernel(dtype, ids, V, present, N, T, rows, monkeypatch):
    if ids == "32 bits":
        monkeypatch.setattr(native, "id_dtype", lambda Vc: np.int32)
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


@pytest.mark.parametrize("group_rows", [1, 4, 25])
def test_rows_per_call_do_not_change_the_sums(group_rows, monkeypatch):
    """Blocks of 1 row, and groups sorted together of 1, 4 (not dividing 25) or all rows: the same sums."""
    tokens, V = corpus(3, 40, 30, 25, 12), 40
    M = torch.from_numpy(np.random.default_rng(2).standard_normal((V, V)))
    all_ = sums(tokens, V, torch.float64, 25, M, False, monkeypatch)
    monkeypatch.setattr(native, "GROUP_TOKENS", group_rows * 13)
    one = sums(tokens, V, torch.float64, 1, M, False, monkeypatch)
    for name in EXACT:
        assert torch.equal(getattr(one[0], name), getattr(all_[0], name)), name
    assert torch.equal(one[1].Q, all_[1].Q)
    assert float((one[1].Delta - all_[1].Delta).abs().max()) <= 1e-14 * float(all_[1].Q.abs().max())


def test_ids_are_read_in_16_bits_where_they_fit():
    assert native.id_dtype(65536) == np.uint16 and native.id_dtype(65537) == np.int32


def test_order_by_row_is_a_stable_sort():
    order_by_row = native._compiled()[0]
    z = np.random.default_rng(4).integers(0, 9, size=(6, 8)).astype(np.uint16)
    for W in (8, 7):
        start, order = order_by_row(z, 9, W)
        keys = z[:, :W].reshape(-1)
        expected = np.argsort(keys, kind="stable")  # positions i·W + t
        assert np.array_equal(order, expected) and np.array_equal(start, np.r_[0, np.cumsum(np.bincount(keys, minlength=9))])


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


WARM_CHECK = """
import sys, torch, numpy as np
from leadingterms.basis import native
dtype, V = getattr(torch, sys.argv[1]), int(sys.argv[2])
native.warm(dtype, V)
ids, acc = np.dtype(native.id_dtype(V)).name, torch.empty((), dtype=dtype).numpy().dtype.name
order, bigram, attention = native._compiled()
print(any(s[0].dtype.name == ids for s in order.signatures),
      any(s[0].dtype.name == ids and s[5].dtype.name == acc for s in bigram.signatures),
      any(s[0].dtype.name == ids and s[4].dtype.name == acc for s in attention.signatures))
# the products of M as reduce_basis calls them: no signature beyond the one warm() loaded
import scipy.sparse as sp
product = native._compiled_product().kernel()
loaded = len(product.signatures)
from leadingterms.basis.types import Basis
z = torch.zeros(4, 4, dtype=dtype)
C = sp.csr_matrix(np.eye(4, dtype=acc))
b = Basis(B_bar=z, Phi_bar=torch.ones(4, 4, dtype=dtype), Q_bar=z, Delta=z[0], Pi=z[0], A_bar=z, N=1, T=4, V=4)
b._cache["counts"] = C
b.M(threads=2)
print(loaded == len(product.signatures) == 1)
"""


@pytest.mark.parametrize("dtype,V", [("float64", 3001), ("float32", 70000)])
def test_warm_loads_the_kernels_a_run_calls(dtype, V):
    """warm() calls each kernel once on a tiny row with the run's types (ids of 16 or 32 bits), in a fresh
    process: afterwards the dispatchers hold those signatures, so a task's first call loads nothing."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", WARM_CHECK, dtype, str(V)], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["True", "True", "True", "True"]


def csr(seed: int, n: int, V: int, density: float, dtype=np.float64, empty_rows: int = 0):
    import scipy.sparse as sp

    g = np.random.default_rng(seed)
    dense = np.where(g.random((n, V)) < density, g.integers(1, 50, size=(n, V)), 0).astype(dtype)
    dense[:empty_rows] = 0
    return sp.csr_matrix(dense)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparse_product_has_scipys_bits_on_any_number_of_threads(dtype):
    """Each output row is summed over its nonzeros in SciPy's order, by one thread: the same bits as
    ``C @ X`` for 1, 2, 3 and more threads than rows; and the values of a naive float64 product."""
    C = csr(5, 37, 29, 0.3, dtype, empty_rows=4)
    X = np.random.default_rng(6).standard_normal((29, 11)).astype(dtype)
    expected = C @ X
    for threads in (1, 2, 3, 64):
        got = native.sparse_times_dense(C, X, threads)
        assert got.dtype == expected.dtype and np.array_equal(got, expected), threads
    naive = np.zeros((37, 11))
    rows, cols = C.nonzero()
    for r, c in zip(rows, cols, strict=True):
        naive[r] += float(C[r, c]) * X[c].astype(np.float64)
    tol = 1e-14 if dtype == np.float64 else 1e-5
    assert np.abs(got - naive).max() <= tol * np.abs(naive).max()


def test_sparse_product_of_the_transpose_and_of_empty_matrices():
    C = csr(7, 20, 20, 0.2)
    X = np.random.default_rng(8).standard_normal((20, 20))
    assert np.array_equal(native.sparse_times_dense(C.T.tocsr(), X, 2), C.T @ X)
    empty = csr(9, 6, 20, 0.0)
    assert np.array_equal(native.sparse_times_dense(empty, X, 2), np.zeros((6, 20)))
    wide = C.copy()  # 64-bit indices, as SciPy makes them past 2^31 nonzeros
    wide.indptr, wide.indices = wide.indptr.astype(np.int64), wide.indices.astype(np.int64)
    assert np.array_equal(native.sparse_times_dense(wide, X, 2), C @ X)


def test_M_on_several_threads_has_the_same_bits():
    """reduce_basis forms M on the engine's worker threads; the basis must not depend on it."""
    from leadingterms.basis.stats import compute_basis

    tokens = corpus(11, 60, 55, 40, 16)
    b1 = compute_basis(tokens, 60, progress=False)
    b2 = compute_basis(tokens, 60, progress=False)
    b2._cache.pop("M", None)
    assert torch.equal(b1.M(threads=1), b2.M(threads=3))


CONCURRENT_PRODUCTS = """
import threading, numpy as np, scipy.sparse as sp
from leadingterms.basis import native
C = sp.random(300, 300, density=0.05, format="csr", random_state=0)
X = np.random.default_rng(0).random((300, 40))
def go():
    for _ in range(20):
        native.sparse_times_dense(C, X, 2)
threads = [threading.Thread(target=go) for _ in range(3)]
[t.start() for t in threads]
[t.join() for t in threads]
import numba
print(numba.threading_layer())
"""


def test_products_from_several_threads_at_once_do_not_abort():
    """Numba's fallback thread pool (workqueue) aborts the process on parallel launches from two threads at
    once (stats' warm thread and M can meet): the launches are serialised."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    done = subprocess.run([sys.executable, "-c", CONCURRENT_PRODUCTS], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["workqueue"]


SCIPY_FIRST = """
import sys, numpy as np, scipy.sparse as sp, torch
from leadingterms.basis import native
C = sp.random(200, 200, density=0.05, format="csr", random_state=1)
X = np.random.default_rng(1).random((200, 30))
first = native.sparse_times_dense(C, X)
print("numba" in sys.modules)
assert native.available()  # Numba loaded: the compiled product from now on
print(np.array_equal(first, native.sparse_times_dense(C, X)), np.array_equal(first, native.sparse_times_dense(C, X, 2)))
"""


def test_one_thread_without_numba_loaded_is_scipys_product():
    """A single product where Numba is not loaded yet (predict from a saved basis) is SciPy's, without Numba's
    start-up; it has the compiled product's bits."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", SCIPY_FIRST], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True"]
