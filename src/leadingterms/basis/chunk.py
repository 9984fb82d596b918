"""The pair arrays of one chunk of rows: the working set of both passes' gathers and scatter-adds.

Index conventions as in :mod:`leadingterms.basis.stats`: pairs (t, j) with j <= t, packed row-major,
P = T(T+1)/2 per row; the uniform causal attention weight of a pair is A0[t, j] = 1/(t+1).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

#: Working-set budget for one chunk's pair arrays (keys, gathered values, kernel, weights). Larger
#: chunks spend less of the time in per-block Python calls (which hold the GIL): 300 rows at T=200.
DEFAULT_CHUNK_BYTES = 192 * 2**20
#: Bytes of chunk working set per (t, j) pair (two int64 keys, values, weights).
_PAIR_BYTES = 32

def chunk_rows_for(T: int, budget_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Rows per chunk so that the chunk's T(T+1)/2 pairs per row fit ``budget_bytes``."""
    P = T * (T + 1) // 2
    return max(1, budget_bytes // (P * _PAIR_BYTES))


@dataclass(frozen=True)
class Pairs:
    """Pairs (t, j), j <= t < T, P = T(T+1)/2 of them, row-major: block t = pairs (t, 0..t) at
    ``bounds[t]:bounds[t+1]``. ``m`` (P,) = t − j; ``inv_t`` (T,) = 1/(t+1); ``w`` (P,) = 1/(t+1)
    per pair; ``lengths`` (T,) = t + 1.

    Row-major order keeps consecutive keys in one row of the V×V buffers (y_t or x_t fixed),
    which roughly doubles the speed of the scatter-adds and gathers over a random order.
    """

    T: int
    bounds: list[int]
    lengths: Tensor
    m: Tensor
    inv_t: Tensor
    w: Tensor


@functools.lru_cache(maxsize=16)
def pairs(T: int, dtype: torch.dtype, device: torch.device) -> Pairs:
    t, j = torch.tril_indices(T, T, device=device)
    inv_t = 1.0 / torch.arange(1, T + 1, dtype=dtype, device=device)
    bounds = [t_ * (t_ + 1) // 2 for t_ in range(T + 1)]
    return Pairs(T=T, bounds=bounds, lengths=torch.arange(1, T + 1, device=device), m=(t - j).contiguous(),
                  inv_t=inv_t, w=inv_t[t].contiguous())


class Chunk:
    """Pair arrays of one chunk of n rows in (n, P) layout: row = sequence, column = pair.

    Buffers are allocated once for ``rows`` sequences and reused (fresh allocations would
    page-fault on every chunk; the tasks of a map-reduce take them from their thread's previous
    task, :class:`~leadingterms.basis.buffers.TaskBuffers`).

    After :meth:`load`: ``x``, ``y`` (n, T) inputs and targets;
    ``key_next`` = y_t·Vc + x_j (cell of Phi and of the gather D = M'[y_t, x_j]) and
    ``key_query`` = x_t·Vc + x_j (cell of Q and of Aᵀ), both (n, P), built one block t at a
    time from contiguous slices (broadcast adds, no gathers).
    """

    def __init__(self, T: int, rows: int, Vc: int, dtype: torch.dtype, device: torch.device) -> None:
        self.pr = pairs(T, dtype, device)
        self.Vc, self.rows, self.dtype, self.device = Vc, rows, dtype, device
        size = self.pr.bounds[-1] * rows
        self._kn = torch.empty(size, dtype=torch.long, device=device)
        self._kq = torch.empty(size, dtype=torch.long, device=device)
        self._val = torch.empty(size, dtype=dtype, device=device)
        self._w: dict[int, Tensor] = {}
        self._len: dict[int, Tensor] = {}
        self._ones: dict[torch.dtype, Tensor] = {}
        self.n = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the pair arrays."""
        return sum(t.numel() * t.element_size() for t in (self._kn, self._kq, self._val))

    def _view(self, buf: Tensor) -> Tensor:
        return buf[: self.pr.bounds[-1] * self.n].view(self.n, -1)

    def _blocks(self) -> list[tuple[int, int, int]]:
        b = self.pr.bounds
        return [(t, b[t], b[t + 1]) for t in range(self.pr.T)]

    def load(self, z: Tensor) -> None:
        """``z`` (n, T+1) compact ids, n <= rows."""
        Vc = self.Vc
        self.n = z.shape[0]
        self.x, self.y = z[:, :-1], z[:, 1:]
        self.key_next, self.key_query = self._view(self._kn), self._view(self._kq)
        yV, xV = self.y * Vc, self.x * Vc
        for t, a, b in self._blocks():
            torch.add(self.x[:, : t + 1], yV[:, t : t + 1], out=self.key_next[:, a:b])
            torch.add(self.x[:, : t + 1], xV[:, t : t + 1], out=self.key_query[:, a:b])

    def weights(self) -> Tensor:
        """(n·P,) A0 weight 1/(t+1) of every pair, flat in the key order."""
        if self.n not in self._w:
            self._w[self.n] = self.pr.w.expand(self.n, -1).contiguous().view(-1)
        return self._w[self.n]

    def kernel(self, Mc: Tensor) -> Tensor:
        """K (n, P): ``K[t, j] = (D[t, j] − mean_{k<=t} D[t, k])/(t+1)``, D gathered from ``Mc`` (Vc·Vc,)."""
        pr = self.pr
        D = self._view(self._val)
        torch.index_select(Mc, 0, self.key_next.view(-1), out=D.view(-1))
        if self.n not in self._len:
            self._len[self.n] = pr.lengths.expand(self.n, -1).contiguous()
        mean = torch.segment_reduce(D, "sum", lengths=self._len[self.n], axis=1).mul_(pr.inv_t)  # (n, T)
        for t, a, b in self._blocks():
            D[:, a:b] -= mean[:, t : t + 1]
        return D.mul_(pr.w)

    def bigram(self, blocks: Iterable[Tensor], counts: Tensor, c: Tensor, PhiA: Tensor) -> None:
        """Pass-1 raw sums of the rows of ``blocks`` ((n, T+1) compact ids, n <= rows), added into ``counts``
        (Vc·Vc,), ``c`` (Vc,) and ``PhiA`` (Vc·Vc·2,): Phi and A_t of each cell in adjacent slots
        (docs/theory.md (2.23))."""
        Phi, A_t = PhiA.view(-1, 2)[:, 0], PhiA.view(-1, 2)[:, 1]
        for z in blocks:
            self.load(z)
            if counts.dtype not in self._ones:
                self._ones[counts.dtype] = counts.new_ones(self.rows * self.pr.T)
            ones = self._ones[counts.dtype][: self.n * self.pr.T]
            counts.scatter_add_(0, (self.x * self.Vc + self.y).reshape(-1), ones)
            c += torch.bincount(self.x.reshape(-1), minlength=self.Vc)
            w = self.weights()
            Phi.scatter_add_(0, self.key_next.view(-1), w)
            A_t.scatter_add_(0, self.key_query.view(-1), w)

    def attention(self, blocks: Iterable[Tensor], Mc: Tensor, Q: Tensor, Delta: Tensor) -> None:
        """Pass-2 raw sums of the rows of ``blocks`` for ``Mc`` (Vc·Vc,), added into ``Q`` (Vc·Vc,) and
        ``Delta`` (T,)."""
        for z in blocks:
            self.load(z)
            K = self.kernel(Mc)
            Delta += self.delta(K)
            Q.scatter_add_(0, self.key_query.view(-1), K.view(-1))

    def delta(self, K: Tensor) -> Tensor:
        """(T,): Σ over the chunk's pairs with t − j = m of K, per m."""
        return torch.zeros(self.pr.T, dtype=K.dtype, device=K.device).index_add_(0, self.pr.m, K.sum(0))
