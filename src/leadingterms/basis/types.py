"""The :class:`Basis` dataclass and its derived products, formed from sparse bigram counts.

``B_bar = (C - u·c 1ᵀ)/(N·T)`` where ``C`` (V, V) is the sparse bigram count matrix
(``C[a, b]`` = number of positions with current token a and next token b) and
``c = rowsum(C) = N·T·π``. Every product with ``B_bar`` is therefore a sparse-dense product
(``nnz(C)·V`` work) plus a rank-one correction, instead of a dense ``V³`` matmul:

    B_bar  X = (C  X − u·c (1ᵀX))/(N·T)
    B_barᵀ X = (Cᵀ X − u·1 (cᵀX))/(N·T)

``C`` is either kept from :func:`~leadingterms.basis.compute_basis` or recovered exactly from
``B_bar`` and ``Pi`` (the entries are integers); when that recovery fails (a basis not built
from counts) the dense products are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from leadingterms.basis.native import sparse_times_dense


def _np(t: Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy()


def counts_from_bigram(B_bar: Tensor, Pi: Tensor, N: int, T: int) -> sp.csr_matrix | None:
    """Recover the integer bigram counts ``C`` (V, V) row = current, col = next from B_bar, Pi.

    Returns None when ``N·T·B_bar + u·N·T·π`` is not integral (to 1e-3 + 1e-5 relative, which
    float32 storage meets): then the basis was not built from counts.
    """
    NT = float(N * T)
    V = B_bar.shape[0]
    pc = torch.round(Pi.double() * NT)
    raw = B_bar.double() * NT + (pc / V)[:, None]
    C = torch.round(raw)
    if ((raw - C).abs() - 1e-5 * raw.abs()).max().item() > 1e-3 or (C.sum(1) - pc).abs().max().item() > 0.5:
        return None
    return sp.csr_matrix(_np(C.to(B_bar.dtype)))


@dataclass
class Basis:
    """Corpus statistics of docs/theory.md §2, all normalised once by 1/(N·T).

    - ``B_bar`` (V, V): row = current token, col = next token (bigram).
    - ``Phi_bar`` (V, V): row = next token, col = context token (context).
    - ``Q_bar`` (V, V): row = query token, col = key token (attention).
    - ``Delta`` (T,): ``Delta[m]`` for offset m = t − j (``Delta[0]`` = diagonal).
    - ``Pi`` (V,): π_a = frequency of a as current token (``diag(Pi)`` = Π).
    - ``A_bar`` (V, V): row = context token, col = query token.
    - ``vocab``: token strings in id order (``<other>`` last with top-K), or None.
    - ``meta``: provenance (corpus_hash, dtype, top_k, token_ids, seconds, ...).
    """

    B_bar: Tensor
    Phi_bar: Tensor
    Q_bar: Tensor
    Delta: Tensor
    Pi: Tensor
    A_bar: Tensor
    N: int
    T: int
    V: int
    vocab: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- sparse bigram factor ------------------------------------------------------------
    def _counts(self) -> sp.csr_matrix | None:
        if "counts" not in self._cache:
            self._cache["counts"] = counts_from_bigram(self.B_bar, self.Pi, self.N, self.T)
        return self._cache["counts"]  # type: ignore[no-any-return]

    def _B_times(self, X: Tensor, *, transpose: bool = False, threads: int = 1) -> Tensor:
        """``B_bar @ X`` (or ``B_barᵀ @ X``) for a dense (V, k) ``X``, via sparse counts (the sparse product on
        ``threads`` threads: the same bits for any number)."""
        C = self._counts()
        X = X.to(self.B_bar.dtype)
        if C is None:
            return (self.B_bar.T if transpose else self.B_bar) @ X
        NT = float(self.N * self.T)
        u = 1.0 / self.V
        pc = torch.from_numpy(np.asarray(C.sum(axis=1, dtype=np.float64)).reshape(-1)).to(X.dtype)
        Xn = _np(X)
        main = torch.from_numpy(sparse_times_dense(C.T.tocsr() if transpose else C, Xn, threads))
        if transpose:
            main.addr_(torch.ones_like(pc), pc @ X.cpu(), alpha=-u)
        else:
            main.addr_(pc, X.sum(0).cpu(), alpha=-u)
        return main.div_(NT).to(self.B_bar.device)

    # -- derived matrices (docs/theory.md §2) -----------------------------------------------------
    def value_direction(self) -> Tensor:
        """Φ̄ᵀB̄ᵀ (V, V): row = context token, col = residual direction (the V prediction)."""
        return self._B_times(self.Phi_bar).T.contiguous()

    def M(self, threads: int = 1) -> Tensor:
        """M = B̄ᵀB̄Φ̄ = Ḡᵀ (V, V): row = next token, col = context token (cached; its sparse products on
        ``threads`` threads, which do not change its bits)."""
        if "M" not in self._cache:
            self._cache["M"] = self._B_times(self._B_times(self.Phi_bar, threads=threads), transpose=True,
                                             threads=threads)
        return self._cache["M"]  # type: ignore[no-any-return]

    def G_bar(self) -> Tensor:
        """Ḡ = Φ̄ᵀB̄ᵀB̄ (V, V): row = context token, col = next token (composition)."""
        return self.M().T.contiguous()

    def interchange_next(self) -> Tensor:
        """B̄ᵀB̄ (V, V): next tokens that share predecessors (symmetric)."""
        return self._B_times(self.B_bar, transpose=True)

    def interchange_prev(self) -> Tensor:
        """B̄B̄ᵀ (V, V): current tokens with similar continuations (symmetric)."""
        return self._B_times(self.B_bar.T.contiguous())
