"""Weight predictions from the basis: the closed forms after s steps of full-batch GD
(docs/theory.md §3), the second-order terms (§4), the paper's bounds, and the ``predict`` stage.

Every prediction is a dict keyed by the model's parameter names (:mod:`leadingterms.theory`):
``W_O`` (V, V) current token -> next token, and for l = 0..L-1 ``layers.{l}.W`` (V, V) query x
key, ``layers.{l}.V`` (V, V) context token -> residual direction, ``layers.{l}.P`` (T,) offset
m = t - j. The leading terms are the same for every layer, so every layer's entry is the *same*
tensor object (clone before writing them to one safetensors file or mutating them).
The SGD path-dependent leading terms (§5) are in :mod:`leadingterms.shadow`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from leadingterms.config import check_config, option
from leadingterms.theory import S2, WEIGHTS, BasisLike, layered
from leadingterms.validate import check_schedule, positive_float, positive_int

LOOSE_BOUNDS_NOTE = (
    "the paper's bounds are loose; with corpus statistics this small they exceed the "
    "leading term itself already at s*eta ~ 0.1 (docs/theory.md §3.5), so report them but do not rely on them"
)


def closed_form(basis: BasisLike, steps: int, lr: float, layers: int) -> dict[str, Tensor]:
    """Leading terms after ``steps`` steps of full-batch GD from zero, every layer (docs/theory.md (3.1)–(3.4)):

        W_O = s η B̄                 (V, V) row = current token, col = next token
        V   = C(s,2) η² Φ̄ᵀB̄ᵀ        (V, V) row = context token, col = residual direction
        W   = c(s) η⁴ Q̄              (V, V) row = query token, col = key token
        P   = c(s) η⁴ Δ              (T,)   offset m = t − j

    (coefficient and direction of each kind: :data:`leadingterms.theory.WEIGHTS`).
    """
    check_schedule(steps, lr, layers)
    return layered({k: w.coef(steps, lr) * w.direction_of(basis) for k, w in WEIGHTS.items()}, layers)


def _row_centred_square(Z: Tensor) -> Tensor:
    """H(Z) = Z∘Z − rowmean(Z∘Z) (docs/theory.md §4), same shape as Z."""
    sq = Z * Z
    return sq - sq.mean(dim=1, keepdim=True)


def second_order_corrections(basis: BasisLike, steps: int, lr: float, layers: int) -> tuple[Tensor, Tensor]:
    """The next Taylor terms beyond §3 (docs/theory.md §4), returned as (dW_O, dV), both (V, V):

        dW_O = − C(s,2) η² ΠB̄/V + η³ [ C(s,3) Π²B̄/V² − S₂(s)/(2V) · Π H(B̄) + L·C(s,3) B̄Φ̄Φ̄ᵀ ]
        dV   = − η³ [ C(s,3) Φ̄ᵀB̄ᵀΠ/V + S₂(s)/V · ĀB̄B̄ᵀ ]

    with Π = diag(π) (π = ``basis.Pi``, (V,)), V the vocabulary size and L = ``layers``.
    """
    s, eta, L = int(steps), float(lr), int(layers)
    B, Phi, A_bar = basis.B_bar, basis.Phi_bar, basis.A_bar
    Vn = B.shape[0]
    pi = basis.Pi.to(B.dtype).unsqueeze(1)  # (V, 1): Π Z = pi * Z (scales rows)
    C2, C3, s2 = math.comb(s, 2), math.comb(s, 3), S2(s)
    dW_O = (-C2 * eta**2 / Vn) * (pi * B) + eta**3 * (
        (C3 / Vn**2) * (pi * pi * B)
        - (s2 / (2 * Vn)) * (pi * _row_centred_square(B))
        + (L * C3) * ((B @ Phi) @ Phi.T)
    )
    value_dir = basis.value_direction()  # Φ̄ᵀB̄ᵀ
    dV = -(eta**3) * ((C3 / Vn) * (value_dir * pi.T) + (s2 / Vn) * (A_bar @ B) @ B.T)
    return dW_O, dV


def predict(basis: BasisLike, steps: int, lr: float, layers: int, order: int = 1) -> dict[str, Tensor]:
    """Order 1: :func:`closed_form`. Order 2: W_O and V through their next Taylor terms (§4);
    W and P keep their §3 leading terms."""
    pred = closed_form(basis, steps, lr, layers)
    if order == 1:
        return pred
    if order != 2:
        from leadingterms.errors import LeadingTermsError

        raise LeadingTermsError(f"order must be 1 or 2, got {order}")
    dW_O, dV = second_order_corrections(basis, steps, lr, layers)
    return layered({"W_O": pred["W_O"] + dW_O, "W": pred["layers.0.W"], "V": pred["layers.0.V"] + dV,
                    "P": pred["layers.0.P"]}, layers)


def second_order(basis: BasisLike, steps: int, lr: float, layers: int) -> dict[str, Tensor]:
    """``predict(..., order=2)``."""
    return predict(basis, steps, lr, layers, order=2)


def paper_bounds(steps: int, lr: float, T: int) -> dict[str, float]:
    """The paper's Frobenius bounds on ‖learned − leading term‖_F per kind (docs/theory.md §3.5):
    W_O: 3s²η², V: 12s³η³, W: 13s⁵η⁵T, P: 13s⁵η⁵T. Loose: see ``LOOSE_BOUNDS_NOTE``.
    Computed in floating point without overflow: an astronomically large bound is ``inf``."""
    s, eta = float(steps), float(lr)

    def power(c: float, k: int, extra: float = 1.0) -> float:
        try:
            return c * s**k * eta**k * extra
        except OverflowError:
            return math.inf

    return {"W_O": power(3, 2), "V": power(12, 3), "W": power(13, 5, T), "P": power(13, 5, T)}


# ----------------------------------------------------------------------------- the predict stage


@dataclass(kw_only=True)
class PredictConfig:
    """``leadingterms predict``: closed-form weights after ``steps`` steps of full-batch GD."""

    stats: str = option(help="basis folder from `leadingterms stats`", metavar="DIR")
    steps: int = option(help="number of GD steps s (>= 1)", metavar="S", check=positive_int)
    lr: float = option(help="learning rate eta (> 0)", metavar="ETA", check=positive_float)
    layers: int = option(help="number of layers (>= 1)", metavar="L", check=positive_int)
    out: str = option(help="output .safetensors file to create", metavar="FILE")
    order: int = option(1, help="1: the leading terms of docs/theory.md §3; 2: with the §4 terms for W_O and V",
                        choices=(1, 2))


@dataclass
class PredictResult:
    """The file written and its metadata (steps, lr, layers, order, corpus_hash, bounds, norms)."""

    path: Path
    meta: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def run_predict(cfg: PredictConfig) -> PredictResult:
    """Load the basis, write the predicted weights (safetensors + JSON metadata) to ``cfg.out``."""
    from leadingterms.basis import load_basis
    from leadingterms.persist import save_tensors

    check_config(cfg)
    basis = load_basis(cfg.stats)
    pred = predict(basis, cfg.steps, cfg.lr, cfg.layers, cfg.order)
    norms = {k: float(torch.linalg.vector_norm(v.to(torch.float64))) for k, v in pred.items()}
    meta = {
        "kind": "leadingterms.predict",
        "steps": int(cfg.steps),
        "lr": float(cfg.lr),
        "layers": int(cfg.layers),
        "order": int(cfg.order),
        "corpus_hash": basis.meta.get("corpus_hash"),
        "V": int(basis.V),
        "T": int(basis.T),
        "bounds": paper_bounds(cfg.steps, cfg.lr, basis.T),
        "bounds_note": LOOSE_BOUNDS_NOTE,
        "norms": norms,
    }
    # layers share tensors in memory; safetensors refuses shared storage, so clone per layer
    save_tensors(cfg.out, {k: v.clone() for k, v in pred.items()}, metadata=meta)
    return PredictResult(Path(cfg.out), meta, [LOOSE_BOUNDS_NOTE])
