"""The SGD shadow of docs/theory.md §5 written densely, straight from the definitions (float64).

Independent of the package: one-hot matrices, dense (V, V) per-batch statistics (2.2), (2.5),
(2.12)–(2.16) normalised by the batch's |ℬ|·T (5.1), the dense M_r = W_Oᵀ Vᵀ (a V³ product) and
the recursion (5.2) with the state *before* the update on the right-hand sides. Vectorised over
positions (no per-position Python loop) so that real corpora at V of a few thousand stay testable;
:func:`reference.naive.naive_basis` (explicit loops and Jacobians) anchors it at small sizes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def batch_statistics(tokens: np.ndarray | Tensor, V: int, M: Tensor | None = None) -> dict[str, Tensor]:
    """B_bar, Phi_bar (V, V) and, given ``M`` (V, V) row = next token, col = context token,
    Q_bar (V, V) and Delta (T,) of ``tokens`` (N, T+1), each normalised by 1/(N·T)."""
    tok = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
    N, T = tok.shape[0], tok.shape[1] - 1
    u = 1.0 / V
    X = torch.nn.functional.one_hot(tok[:, :-1], V).to(torch.float64)  # (N, T, V)
    R = torch.nn.functional.one_hot(tok[:, 1:], V).to(torch.float64) - u  # (N, T, V), rows r_t
    A0 = torch.tril(torch.ones(T, T, dtype=torch.float64)) / torch.arange(1, T + 1, dtype=torch.float64)[:, None]
    NT = N * T
    out = {
        "B_bar": torch.einsum("ntv,ntw->vw", X, R) / NT,
        "Phi_bar": torch.einsum("ntb,tj,njc->bc", R, A0, X) / NT,
    }
    if M is not None:
        D = R @ M @ X.transpose(1, 2)  # (N, T, T): D[t, j] = r_tᵀ M e_{x_j}
        causal = A0 > 0
        mean = (D * A0).sum(-1, keepdim=True)  # mean of D[t, j] over j <= t
        K = torch.where(causal, (D - mean) * A0, torch.zeros((), dtype=torch.float64))  # J_t on row t
        out["Q_bar"] = torch.einsum("ntv,ntj,njw->vw", X, K, X) / NT
        out["Delta"] = torch.stack([torch.diagonal(K, -m, dim1=1, dim2=2).sum() for m in range(T)]) / NT
    return out


class DenseShadow:
    """W_O, V, W (V, V) and P (T,) advanced by (5.2) with dense statistics (every layer identical)."""

    def __init__(self, V: int, T: int, lr: float) -> None:
        self.V, self.T, self.lr = V, T, lr
        self.W_O = torch.zeros(V, V, dtype=torch.float64)
        self.Vv = torch.zeros(V, V, dtype=torch.float64)
        self.W = torch.zeros(V, V, dtype=torch.float64)
        self.P = torch.zeros(T, dtype=torch.float64)

    def update(self, batch: np.ndarray | Tensor) -> None:
        eta = self.lr
        st = batch_statistics(batch, self.V, M=self.W_O.T @ self.Vv.T)
        self.W = self.W + eta * st["Q_bar"]
        self.P = self.P + eta * st["Delta"]
        self.Vv = self.Vv + eta * st["Phi_bar"].T @ self.W_O.T
        self.W_O = self.W_O + eta * st["B_bar"]

    def weights(self, layers: int) -> dict[str, Tensor]:
        out = {"W_O": self.W_O}
        for l in range(layers):
            out.update({f"layers.{l}.W": self.W, f"layers.{l}.V": self.Vv, f"layers.{l}.P": self.P})
        return out
