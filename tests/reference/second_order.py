"""The second-order terms of docs/theory.md §4, (4.3) and (4.4), written out densely (float64)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def reference_second_order(B: Tensor, Phi: Tensor, A_bar: Tensor, pi: Tensor, s: int, eta: float,
                           L: int) -> tuple[Tensor, Tensor]:
    """(W_O(s), V(s)) through their η³ terms: every product dense, H and S₂ from their definitions."""
    B, Phi, A_bar = B.double(), Phi.double(), A_bar.double()
    V = B.shape[0]
    u = 1.0 / V
    Pi = torch.diag(pi.double())
    sq = B * B
    H = sq - (1.0 / V) * sq @ torch.ones(V, V, dtype=torch.float64)  # (4.1)
    S2 = sum(r * r for r in range(s))  # (4.2)
    C2, C3 = math.comb(s, 2), math.comb(s, 3)
    W_O = (s * eta * B - C2 * eta**2 * u * Pi @ B
           + eta**3 * (C3 * u**2 * Pi @ Pi @ B - S2 * (u / 2) * Pi @ H + L * C3 * B @ Phi @ Phi.T))
    V_ = C2 * eta**2 * Phi.T @ B.T - eta**3 * (C3 * u * Phi.T @ B.T @ Pi + S2 * u * A_bar @ B @ B.T)
    return W_O, V_
