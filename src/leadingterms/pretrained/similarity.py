"""Gram similarity (docs/theory.md §8): compare two sets of n row vectors by their n×n Gram matrices.

For an (n, m) matrix S whose row a describes token a (a residual state, a row of attention
scores, a row of Φ̄ᵀB̄ᵀ or Q̄):

    S_c  = S − rowmean(S)             every row centred over its m entries (the feature dim)
    G(S) = S_c S_cᵀ / (m − 1)         (n, n); row/col = token

and two Gram matrices are compared by the Frobenius cosine of the matrices each divided by its
Frobenius norm, ``⟨G1, G2⟩_F / (‖G1‖_F ‖G2‖_F)``. The corpus side is L2-normalised row by row
before its Gram (:func:`target_gram`); the model side is not.

Attention scores ``S = Q Kᵀ`` (n queries × n keys, rank ≤ d_head) are never formed: with
``K_c = K − mean over keys``, ``S_c = Q K_cᵀ`` and ``G = Q (K_cᵀ K_c) Qᵀ / (n − 1)``, which costs
n²·d_head instead of n³.
"""

from __future__ import annotations

import torch
from torch import Tensor

from leadingterms.metrics import frobenius_cosine


def row_normalize(X: Tensor) -> Tensor:
    """(n, m) -> each row divided by its L2 norm (all-zero rows stay zero)."""
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    return X / torch.where(norms > 0, norms, torch.ones_like(norms))


def centred_gram(X: Tensor, R: Tensor | None = None) -> Tensor:
    """Gram of the row-centred rows of S, (n, n), float64.

    ``R is None``: S = X, (n, m). Otherwise S = X Rᵀ with X (n, r) and R (m, r) — e.g. per-head
    queries and keys; S is (n, m) and is never formed. G = S_c S_cᵀ / (m − 1).
    """
    X = X.to(torch.float64)
    if R is None:
        m = X.shape[1]
        Xc = X - X.mean(dim=1, keepdim=True)
        return Xc @ Xc.T / max(m - 1, 1)
    R = R.to(torch.float64)
    m = R.shape[0]
    Rc = R - R.mean(dim=0, keepdim=True)  # centring S's rows = centring R over its m rows
    return X @ (Rc.T @ Rc) @ X.T / max(m - 1, 1)


def target_gram(S: Tensor) -> Tensor:
    """Gram of the L2-normalised rows of a corpus matrix (Φ̄ᵀB̄ᵀ, Q̄, B̄), (n, n)."""
    return centred_gram(row_normalize(S.to(torch.float64)))


def gram_similarity(G_model: Tensor, G_target: Tensor) -> float:
    """Similarity of two (n, n) Gram matrices (docs/theory.md (8.3)): their Frobenius cosine."""
    return frobenius_cosine(G_model, G_target)


def double_centre(G: Tensor) -> Tensor:
    """H G H with H = I − 11ᵀ/n: a Gram of token-centred states (removes the component shared by all
    tokens; the Frobenius cosine of two double-centred Grams is linear CKA)."""
    G = G.to(torch.float64)
    return G - G.mean(dim=0, keepdim=True) - G.mean(dim=1, keepdim=True) + G.mean()


def row_centre(X: Tensor) -> Tensor:
    """(n, m) -> rows centred over their m entries (logits are defined up to a per-row constant)."""
    X = X.to(torch.float64)
    return X - X.mean(dim=1, keepdim=True)
