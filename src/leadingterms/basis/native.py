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
through memory several times. Here a pair costs one gather and one add into the row of its cell
(cache-resident), and no memory but the accumulators: ≈ 2.5× the torch kernel on one core, and
the kernels release the GIL, so the worker threads of ``--workers N`` run them at once.

The additions into every cell of counts, c, Phi, A_t and Q happen in the torch kernel's order
(rows, then t, then j) with the same operations, so they are bit-identical to it
(tests/unit/basis/test_native.py); Delta is summed in another order (agrees to ~1e-14).
Results do not depend on how rows are grouped into calls.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch import Tensor

from leadingterms.basis.chunk import pairs


def _bigram_rows(z: Any, Vc: int, inv_t: Any, counts: Any, c: Any, Phi: Any, A_t: Any) -> None:
    n, T = z.shape[0], z.shape[1] - 1
    for i in range(n):
        for t in range(T):
            x, y = z[i, t], z[i, t + 1]
            counts[x * Vc + y] += 1
            c[x] += 1
            w = inv_t[t]
            row_phi, row_a = y * Vc, x * Vc
            for j in range(t + 1):
                xj = z[i, j]
                Phi[row_phi + xj] += w
                A_t[row_a + xj] += w


def _attention_rows(z: Any, Vc: int, inv_t: Any, Mc: Any, Q: Any, Delta: Any) -> None:
    n, T = z.shape[0], z.shape[1] - 1
    D = np.empty(T, dtype=Q.dtype)
    by_offset = np.zeros(T)  # Delta's sums over these rows in float64 (~10^5 terms each), added once
    zero = inv_t[0] - inv_t[0]  # 0 in the statistics' dtype (a float32 sum stays float32, as in torch)
    for i in range(n):
        for t in range(T):
            row_m, row_q = z[i, t + 1] * Vc, z[i, t] * Vc
            s = zero
            for j in range(t + 1):
                d = Mc[row_m + z[i, j]]
                D[j] = d
                s += d
            w = inv_t[t]
            mean = s * w
            for j in range(t + 1):
                k = (D[j] - mean) * w
                Q[row_q + z[i, j]] += k
                by_offset[t - j] += k
    for m in range(T):
        Delta[m] += by_offset[m]


@functools.cache
def _compiled() -> tuple[Any, Any] | None:
    try:
        import numba
    except ImportError:  # pragma: no cover - a dependency; the torch kernel is used instead
        return None
    jit = numba.njit(nogil=True, cache=True)
    return jit(_bigram_rows), jit(_attention_rows)


def available() -> bool:
    """True where the compiled kernels can run (Numba imports)."""
    return _compiled() is not None


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()


class NativeRows:
    """The per-row kernels for blocks of rows on the CPU; the same methods as
    :class:`~leadingterms.basis.chunk.Chunk`, with no buffers of its own."""

    def __init__(self, T: int, Vc: int, dtype: torch.dtype) -> None:
        self.Vc = Vc
        self.inv_t = _np(pairs(T, dtype, torch.device("cpu")).inv_t)
        kernels = _compiled()
        assert kernels is not None, "NativeRows needs Numba (check available())"
        self._bigram, self._attention = kernels

    def bigram(self, z: Tensor, counts: Tensor, c: Tensor, Phi: Tensor, A_t: Tensor) -> None:
        """Pass-1 raw sums of the rows ``z`` (n, T+1) compact ids over Vc ids, added into ``counts``, ``Phi``,
        ``A_t`` (Vc·Vc,) and ``c`` (Vc,)."""
        self._bigram(_np(z), self.Vc, self.inv_t, _np(counts), _np(c), _np(Phi), _np(A_t))

    def attention(self, z: Tensor, Mc: Tensor, Q: Tensor, Delta: Tensor) -> None:
        """Pass-2 raw sums of the rows ``z`` for ``Mc`` (Vc·Vc,) added into ``Q`` (Vc·Vc,) and ``Delta`` (T,)."""
        self._attention(_np(z), self.Vc, self.inv_t, _np(Mc), _np(Q), _np(Delta))
