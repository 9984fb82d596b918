"""Both passes' per-row sums compiled for the CPU (Numba): one loop over the pairs of each row.

Index conventions as in :mod:`leadingterms.basis.stats` (docs/theory.md §2.4, (2.23)): row
``z`` (T+1,) of compact ids, x_t = z[t], y_t = z[t+1]; pairs (t, j), j <= t; A0[t, j] = 1/(t+1)
(``inv_t[t]``); the flat (Vc·Vc,) accumulators have cell ``row·Vc + col``.

- pass 1, :func:`_bigram_rows`: ``counts[x_t, y_t] += 1``, ``c[x_t] += 1``,
  ``Phi[y_t, x_j] += 1/(t+1)``, ``A_t[x_t, x_j] += 1/(t+1)``;
- pass 2, :func:`_attention_rows`: ``D[j] = Mc[y_t, x_j]`` (M' centred, compact block),
  ``K[t, j] = (D[j] − Σ_k D[k]·1/(t+1))·1/(t+1)``, ``Q[x_t, x_j] += K[t, j]``,
  ``Delta[t − j] += K[t, j]``.

The torch kernel (:class:`~leadingterms.basis.chunk.Chunk`, used on GPUs and where Numba is
missing) builds the same sums from pair arrays of a whole chunk: about 32 bytes per pair streamed
through memory several times. Here a pair costs one gather and one add into the row of its cell,
and the two arrays a pass touches together share cache lines: pass 1 adds into Phi and A_t kept
cell by cell side by side (``PhiA`` (Vc·Vc·2,)), sweeping row x_t of A_t at step t together with
row y_{t−1} = x_t of Phi; pass 2, where a task has many rows for its vocabulary, copies M' into an
interleaved (M', Q) scratch buffer, so that the adds of step t into row x_t = y_{t−1} of Q hit the
lines of the gather of step t − 1 from row y_{t−1} of M'. 2.7–3.3× the torch kernel on
one core (benchmarks/RESULTS.md), and the kernels release the GIL, so the worker threads of
``--workers N`` run them at once.

The additions into every cell of counts, c, Phi, A_t and Q happen in the torch kernel's order
(rows, then t, then j) with the same operations, so they are bit-identical to it
(tests/unit/basis/test_native.py); Delta is summed in another order (agrees to ~1e-14), in float64
within a call.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from leadingterms.basis.chunk import DEFAULT_CHUNK_BYTES, pairs

if TYPE_CHECKING:
    from leadingterms.basis.buffers import Buffers


def _bigram_rows(z: Any, Vc: int, inv_t: Any, counts: Any, c: Any, PA: Any) -> None:
    n, T = z.shape[0], z.shape[1] - 1
    for i in range(n):
        for t in range(T):
            x = z[i, t]
            counts[x * Vc + z[i, t + 1]] += 1
            c[x] += 1
        # row x_t = y_{t-1} takes A_t's terms of step t and Phi's of step t − 1 in one sweep over x_0..x_t,
        # into adjacent slots; each cell still receives its terms in (t, j) order
        x0 = z[i, 0]
        PA[2 * (x0 * Vc + x0) + 1] += inv_t[0]  # A_t, t = 0
        for t in range(1, T):
            row = z[i, t] * Vc
            w_phi, w_a = inv_t[t - 1], inv_t[t]
            for j in range(t):
                k = 2 * (row + z[i, j])
                PA[k] += w_phi  # Phi[y_{t-1}, x_j]
                PA[k + 1] += w_a  # A_t[x_t, x_j]
            PA[2 * (row + z[i, t]) + 1] += w_a  # A_t[x_t, x_t]
        row, w_phi = z[i, T] * Vc, inv_t[T - 1]
        for j in range(T):  # Phi, t = T − 1
            PA[2 * (row + z[i, j])] += w_phi


def _attention_rows(z: Any, Vc: int, inv_t: Any, Mbuf: Any, Qbuf: Any, s: int, Delta: Any) -> None:
    # M' of cell k at Mbuf[s·k], Q at Qbuf[s·k + s − 1]: separate arrays (s = 1), or one interleaved array (s = 2)
    n, T = z.shape[0], z.shape[1] - 1
    D = np.empty(T, dtype=Qbuf.dtype)
    by_offset = np.zeros(T)  # Delta's sums over these rows in float64 (~10^5 terms each), added once
    zero = inv_t[0] - inv_t[0]  # 0 in the statistics' dtype (a float32 sum stays float32, as in torch)
    q_slot = s - 1
    for i in range(n):
        for t in range(T):
            row_m, row_q = z[i, t + 1] * Vc, z[i, t] * Vc
            acc = zero
            for j in range(t + 1):
                d = Mbuf[s * (row_m + z[i, j])]
                D[j] = d
                acc += d
            w = inv_t[t]
            mean = acc * w
            for j in range(t + 1):
                k = (D[j] - mean) * w
                Qbuf[s * (row_q + z[i, j]) + q_slot] += k
                by_offset[t - j] += k
    for m in range(T):
        Delta[m] += by_offset[m]


@functools.cache
def _compiled() -> tuple[Any, Any] | None:
    try:
        import numba
    except ImportError:  # pragma: no cover - a dependency; the torch kernel is used instead
        return None
    try:  # compiled once, then loaded from Numba's cache (next to this file, or the user's cache folder)
        jit = numba.njit(nogil=True, cache=True)
        return jit(_bigram_rows), jit(_attention_rows)
    except RuntimeError:  # no writable cache location: compiled in every process
        jit = numba.njit(nogil=True)
        return jit(_bigram_rows), jit(_attention_rows)


def available() -> bool:
    """True where the compiled kernels can run (Numba imports)."""
    return _compiled() is not None


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


#: Pass 2 interleaves (M', Q) when a task's pairs outnumber the cells this many times (building and reading
#: back the scratch costs a few passes over 2·Vc² numbers) and the scratch fits the torch kernel's chunk budget
INTERLEAVE_PAIRS_PER_CELL = 16


class NativeRows:
    """The per-row kernels on the CPU for ``N`` rows; the same methods as :class:`~leadingterms.basis.chunk.Chunk`.
    Pass 2 works in an interleaved (Vc·Vc, 2) scratch buffer (M', Q) from ``buffers``, given back at the end,
    where the rows are many for the vocabulary (:data:`INTERLEAVE_PAIRS_PER_CELL`); else in M' and Q."""

    def __init__(self, T: int, Vc: int, dtype: torch.dtype, buffers: Buffers, N: int) -> None:
        self.Vc, self.dtype, self.buffers = Vc, dtype, buffers
        self.inv_t = _np(pairs(T, dtype, torch.device("cpu")).inv_t)
        scratch = 2 * Vc * Vc * torch.empty((), dtype=dtype).element_size()
        self.interleave = (N * T * (T + 1) // 2 >= INTERLEAVE_PAIRS_PER_CELL * Vc * Vc
                           and scratch <= DEFAULT_CHUNK_BYTES)
        kernels = _compiled()
        assert kernels is not None, "NativeRows needs Numba (check available())"
        self._bigram, self._attention = kernels

    def bigram(self, blocks: Iterable[Tensor], counts: Tensor, c: Tensor, PhiA: Tensor) -> None:
        """Pass-1 raw sums of the rows of ``blocks`` ((n, T+1) compact ids) added into ``counts`` (Vc·Vc,),
        ``c`` (Vc,) and ``PhiA`` (Vc·Vc·2,): Phi and A_t of each cell in adjacent slots."""
        for z in blocks:
            self._bigram(_np(z), self.Vc, self.inv_t, _np(counts), _np(c), _np(PhiA))

    def attention(self, blocks: Iterable[Tensor], Mc: Tensor, Q: Tensor, Delta: Tensor) -> None:
        """Pass-2 raw sums of the rows of ``blocks`` for ``Mc`` (Vc·Vc,) added into ``Q`` (Vc·Vc,) and
        ``Delta`` (T,)."""
        if not self.interleave:
            for z in blocks:
                self._attention(_np(z), self.Vc, self.inv_t, _np(Mc), _np(Q), 1, _np(Delta))
            return
        MQ = self.buffers.zeros(2 * self.Vc * self.Vc, self.dtype, torch.device("cpu"))  # (M', Q) per cell
        MQ.view(-1, 2)[:, 0] = Mc
        for z in blocks:
            self._attention(_np(z), self.Vc, self.inv_t, _np(MQ), _np(MQ), 2, _np(Delta))
        Q += MQ.view(-1, 2)[:, 1]
        self.buffers.give_back(MQ)
