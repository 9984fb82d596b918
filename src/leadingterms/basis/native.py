"""Both passes' per-row sums compiled for the CPU (Numba), one row of the accumulators at a time.

Index conventions as in :mod:`leadingterms.basis.stats` (docs/theory.md §2.4, (2.23)): row
``z`` (T+1,) of compact ids, x_t = z[t], y_t = z[t+1]; pairs (t, j), j <= t; A0[t, j] = 1/(t+1)
(``inv_t[t]``); the flat (Vc·Vc,) accumulators have cell ``row·Vc + col``.

- pass 1, :func:`_bigram_rows`: ``counts[x_t, y_t] += 1``, ``c[x_t] += 1``,
  ``Phi[y_t, x_j] += 1/(t+1)``, ``A_t[x_t, x_j] += 1/(t+1)``;
- pass 2, :func:`_attention_rows`: ``D[j] = Mc[y_t, x_j]`` (M' centred, compact block),
  ``K[t, j] = (D[j] − Σ_k D[k]·1/(t+1))·1/(t+1)``, ``Q[x_t, x_j] += K[t, j]``,
  ``Delta[t − j] += K[t, j]``.

Every term of a step t goes to one row of the accumulators: row x_t of A_t and Q, row y_t of Phi.
The kernels therefore visit the steps *by that row* (a stable counting sort of the positions by
their token, :func:`_order_by_row`): all the adds into a row follow one another while the row
(Vc numbers, 24 KB at Vc = 3000) is in the core's cache, instead of one randomly placed row of
the V×V sums per step fetched from memory (tens of MB per shard, shared by the cores). Pass 1
keeps Phi and A_t cell by cell side by side (``PhiA`` (Vc·Vc·2,)): the position t of token a
adds A_t's terms of step t and Phi's terms of step t − 1 (y_{t−1} = x_t = a) to row a. The ids
of the rows are copied to 16 bits where Vc allows (a shard's 4 M tokens: 8 MB, read from cache).

Within a row, the steps are visited in their order (rows, then t), and each step adds its j in
order, so every cell of counts, c, Phi, A_t and Q receives its terms in the order of the torch
kernel (:class:`~leadingterms.basis.chunk.Chunk`, used on GPUs and where Numba is missing) with
the same operations: the sums are bit-identical to it (tests/unit/basis/test_native.py). Delta
is summed in another order (agrees to ~1e-14), in float64 within a call. The kernels release the
GIL, so the worker threads of ``--workers N`` run them at once.

Between the passes, M = B̄ᵀB̄Φ̄ needs two products of the sparse bigram counts with a dense V×V
matrix (:func:`sparse_times_dense`): compiled too, on as many threads as the engine has workers
here. Each output row is summed by one thread, in the order of SciPy's product, so the thread
count does not change a bit.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

from leadingterms.basis.chunk import pairs

#: Tokens (rows × (T+1)) sorted together by one kernel call at most: the ids (2 or 4 bytes each) and
#: the order (4 bytes each) of a shard of the default size (4 M tokens), about 24 MB.
GROUP_TOKENS = 1 << 22


def _order_by_row(z: Any, Vc: int, W: int) -> tuple[Any, Any]:
    """Positions p = i·W + t (t < W) of ``z`` (n, >= W) sorted stably by their token z[i, t] ->
    (start (Vc+1,): the positions of token a are ``order[start[a]:start[a+1]]``, order (n·W,) int32)."""
    n = z.shape[0]
    start = np.zeros(Vc + 1, np.int64)
    for i in range(n):
        for t in range(W):
            start[z[i, t] + 1] += 1
    for a in range(Vc):
        start[a + 1] += start[a]
    fill = start[:-1].copy()
    order = np.empty(n * W, np.int32)
    for i in range(n):
        for t in range(W):
            a = z[i, t]
            order[fill[a]] = i * W + t
            fill[a] += 1
    return start, order


def _bigram_rows(z: Any, Vc: int, inv_t: Any, counts: Any, c: Any, PA: Any, start: Any, order: Any) -> None:
    # start, order: _order_by_row(z, Vc, T + 1)
    n, W = z.shape[0], z.shape[1]
    T = W - 1
    for i in range(n):  # integer counts: exact in any order
        for t in range(T):
            x = z[i, t]
            counts[x * Vc + z[i, t + 1]] += 1
            c[x] += 1
    for a in range(Vc):
        row = a * Vc
        for q in range(start[a], start[a + 1]):
            p = order[q]
            i = p // W
            t = p - i * W
            if t == 0:
                PA[2 * (row + a) + 1] += inv_t[0]  # A_t[x_0, x_0]
            elif t < T:  # A_t's terms of step t and Phi's of step t − 1, into adjacent slots of row a
                w_phi, w_a = inv_t[t - 1], inv_t[t]
                for j in range(t):
                    k = 2 * (row + z[i, j])
                    PA[k] += w_phi  # Phi[y_{t-1}, x_j]
                    PA[k + 1] += w_a  # A_t[x_t, x_j]
                PA[2 * (row + a) + 1] += w_a  # A_t[x_t, x_t]
            else:  # position T: Phi's terms of step T − 1
                w_phi = inv_t[T - 1]
                for j in range(T):
                    PA[2 * (row + z[i, j])] += w_phi


def _attention_rows(z: Any, Vc: int, inv_t: Any, Mc: Any, Q: Any, Delta: Any, start: Any, order: Any) -> None:
    # start, order: _order_by_row(z, Vc, T), the steps t < T by x_t
    T = z.shape[1] - 1
    D = np.empty(T, dtype=Q.dtype)
    by_offset = np.zeros(T)  # Delta's sums over these rows in float64 (~10^5 terms each), added once
    zero = inv_t[0] - inv_t[0]  # 0 in the statistics' dtype (a float32 sum stays float32, as in torch)
    for a in range(Vc):
        row_q = a * Vc
        for q in range(start[a], start[a + 1]):
            p = order[q]
            i = p // T
            t = p - i * T
            row_m = z[i, t + 1] * Vc
            acc = zero
            for j in range(t + 1):
                d = Mc[row_m + z[i, j]]
                D[j] = d
                acc += d
            w = inv_t[t]
            mean = acc * w
            for j in range(t + 1):
                k = (D[j] - mean) * w
                Q[row_q + z[i, j]] += k
                by_offset[t - j] += k
    for m in range(T):
        Delta[m] += by_offset[m]


@functools.cache
def _compiled() -> tuple[Any, Any, Any] | None:
    """(order_by_row, bigram_rows, attention_rows) compiled, or None without Numba."""
    try:
        import numba
    except ImportError:  # pragma: no cover - a dependency; the torch kernel is used instead
        return None
    try:  # compiled once, then loaded from Numba's cache (next to this file, or the user's cache folder)
        jit = numba.njit(nogil=True, cache=True)
        return jit(_order_by_row), jit(_bigram_rows), jit(_attention_rows)
    except RuntimeError:  # no writable cache location: compiled in every process
        jit = numba.njit(nogil=True)
        return jit(_order_by_row), jit(_bigram_rows), jit(_attention_rows)


@functools.cache
def _compiled_product() -> Any:
    """:mod:`leadingterms.basis._csr` (its product compiled on first use, under its launch lock), or None
    without Numba."""
    try:
        from leadingterms.basis import _csr
    except ImportError:  # pragma: no cover - a dependency; SciPy's product is used instead
        return None
    return _csr


def sparse_times_dense(C: Any, X: np.ndarray, threads: int = 1) -> np.ndarray:
    """``C @ X`` for a SciPy CSR matrix C (n, V) and a dense X (V, k), on ``threads`` threads -> (n, k).

    The rows are cut into ``threads`` blocks of about equal nonzero counts; each row is summed over its
    nonzeros in order, as SciPy does (``csr_matvecs``), so the result has the same bits for any
    ``threads``, and those of ``C @ X``, which it is on one thread where Numba is not loaded yet (its
    start-up, about 0.5 s, would cost more than the product: e.g. ``predict`` from a saved basis)."""
    product = _compiled_product() if threads > 1 or "numba" in sys.modules else None
    if product is None:
        return np.asarray(C @ X)
    dtype = np.result_type(C.dtype, X.dtype)
    n = max(1, min(int(threads), product.max_threads(), C.shape[0]))
    indptr = C.indptr
    cuts = np.searchsorted(indptr, np.arange(1, n) * (indptr[-1] / n), side="left")
    bounds = np.concatenate([[0], np.minimum(cuts, C.shape[0]), [C.shape[0]]]).astype(np.int64)
    # allocated by torch, as the package's other V×V buffers: NumPy asks the kernel for huge pages, whose first
    # faults cost 0.1-0.2 s per 72 MB output on a VM (M: 0.41-0.45 s in-process, 0.21-0.26 s from torch)
    out = torch.zeros((C.shape[0], X.shape[1]), dtype=getattr(torch, dtype.name)).numpy()
    product.run(n, bounds, indptr, C.indices, C.data.astype(dtype, copy=False),
                np.ascontiguousarray(X, dtype=dtype), out)
    return out


def available() -> bool:
    """True where the compiled kernels can run (Numba imports)."""
    return _compiled() is not None


def warm(dtype: torch.dtype, V: int) -> None:
    """Load (or compile) the kernels for statistics in ``dtype`` over a vocabulary of ``V`` ids now, e.g. in a
    thread while the store is read, so that the first task does not wait for them (about 0.5 s: Numba's
    start-up and its cache); the passes' kernels first, then the product of M (0.25 s more)."""
    from leadingterms.basis.stats import _counts_dtype  # the accumulators of pass 1, as the tasks make them

    rows = NativeRows(2, 2, dtype, 1)
    z = torch.zeros(1, 3, dtype=torch.long)
    rows.ids = id_dtype(V)
    rows.bigram([z], torch.zeros(4, dtype=_counts_dtype(dtype)), torch.zeros(2, dtype=torch.long),
                torch.zeros(8, dtype=dtype))
    rows.attention([z], torch.zeros(4, dtype=dtype), torch.zeros(4, dtype=dtype), torch.zeros(2, dtype=dtype))
    import scipy.sparse as sp  # then the product of M, needed after pass 1

    np_dtype = torch.empty((), dtype=dtype).numpy().dtype
    sparse_times_dense(sp.csr_matrix(np.ones((2, 2), np_dtype)), np.ones((2, 1), np_dtype))


def id_dtype(Vc: int) -> type[np.integer[Any]]:
    """The dtype the kernels read compact ids < ``Vc`` in: 16 bits where they fit, else 32."""
    return np.uint16 if Vc <= np.iinfo(np.uint16).max + 1 else np.int32


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


class NativeRows:
    """The per-row kernels on the CPU for ``N`` rows of T + 1 compact ids < ``Vc``; the same methods as
    :class:`~leadingterms.basis.chunk.Chunk`."""

    def __init__(self, T: int, Vc: int, dtype: torch.dtype, N: int) -> None:
        self.T, self.Vc, self.N = T, Vc, N
        self.inv_t = _np(pairs(T, dtype, torch.device("cpu")).inv_t)
        self.ids = id_dtype(Vc)
        kernels = _compiled()
        assert kernels is not None, "NativeRows needs Numba (check available())"
        self._order, self._bigram, self._attention = kernels

    def _groups(self, blocks: Iterable[Tensor]) -> Iterator[np.ndarray]:
        """The rows of ``blocks`` ((n, T+1) compact ids) in consecutive groups of at most
        :data:`GROUP_TOKENS` tokens, as (m, T+1) arrays of 16-bit (or 32-bit) ids."""
        W = self.T + 1
        cap = max(1, min(GROUP_TOKENS // W, self.N))
        buf, filled = np.empty((cap, W), dtype=self.ids), 0
        for block in blocks:
            rows = _np(block)
            while len(rows):
                take = min(cap - filled, len(rows))
                buf[filled:filled + take] = rows[:take]
                filled, rows = filled + take, rows[take:]
                if filled == cap:
                    yield buf
                    filled = 0
        if filled:
            yield buf[:filled]

    def bigram(self, blocks: Iterable[Tensor], counts: Tensor, c: Tensor, PhiA: Tensor) -> None:
        """Pass-1 raw sums of the rows of ``blocks`` ((n, T+1) compact ids) added into ``counts`` (Vc·Vc,),
        ``c`` (Vc,) and ``PhiA`` (Vc·Vc·2,): Phi and A_t of each cell in adjacent slots."""
        for z in self._groups(blocks):
            start, order = self._order(z, self.Vc, self.T + 1)
            self._bigram(z, self.Vc, self.inv_t, _np(counts), _np(c), _np(PhiA), start, order)

    def attention(self, blocks: Iterable[Tensor], Mc: Tensor, Q: Tensor, Delta: Tensor) -> None:
        """Pass-2 raw sums of the rows of ``blocks`` for ``Mc`` (Vc·Vc,) added into ``Q`` (Vc·Vc,) and
        ``Delta`` (T,)."""
        for z in self._groups(blocks):
            start, order = self._order(z, self.Vc, self.T)
            self._attention(z, self.Vc, self.inv_t, _np(Mc).reshape(-1), _np(Q), _np(Delta), start, order)
