"""Naive dense readouts (docs/theory.md §7.3, normalisations (7.4)–(7.7)), written from the definitions.

Every matrix is formed densely (numpy float64, explicit products), each normalised entry is computed
by a Python loop over the listed token o, and rankings by Python's ``sorted`` on (−value, id). Shares
no code with the package.
"""

from __future__ import annotations

import math

import numpy as np


def dense_basis_matrix(b: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Basis matrix ``name`` formed densely from the arrays ``B_bar``, ``Phi_bar``, ``Q_bar`` (each (V, V))."""
    B, Phi, Q = (np.asarray(b[k], dtype=np.float64) for k in ("B_bar", "Phi_bar", "Q_bar"))
    return {
        "bigram": B,
        "context": Phi,
        "value": Phi.T @ B.T,
        "attention": Q,
        "interchange-next": B.T @ B,
        "interchange-prev": B @ B.T,
        "composition": Phi.T @ B.T @ B,
    }[name]


def naive_readout(Z: np.ndarray, f: int, column: bool, how: str, pi: np.ndarray) -> np.ndarray:
    """The readout of token f in Z (row f, or column f), normalised by (7.4)–(7.7); NaN where undefined."""
    Z = np.asarray(Z, dtype=np.float64)
    V = Z.shape[0]
    out = np.empty(V)
    for o in range(V):
        v = Z[o, f] if column else Z[f, o]
        if how == "none":  # (7.4)
            out[o] = v
        elif how == "freq":  # (7.5)
            out[o] = v / pi[o] if pi[o] > 0 else math.nan
        elif how == "pmi":  # (7.6)
            out[o] = v / (pi[f] * pi[o]) if pi[o] > 0 else math.nan
        elif how == "centred":  # (7.7): subtract the mean over f' of Z[f', o] (Z[o, f'] for a column)
            mean = sum(Z[o, g] if column else Z[g, o] for g in range(V)) / V
            out[o] = v - mean
        else:
            raise ValueError(how)
    return out


def naive_top(vec: np.ndarray, k: int, exclude: int | None = None) -> list[tuple[int, float]]:
    """The k largest defined entries of ``vec`` as (id, value): largest first, ties by the smaller id."""
    items = [(i, float(v)) for i, v in enumerate(vec) if not math.isnan(v) and i != exclude]
    return sorted(items, key=lambda iv: (-iv[1], iv[0]))[:k]
