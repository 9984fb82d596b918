"""Closed-form weight predictions (SPEC §3), second-order terms (§4), the path-dependent
"shadow" of minibatch SGD (§5), the paper's bounds and the comparison metric.

Every prediction is a dict keyed by the model's parameter names: ``W_O`` (V, V) current token
-> next token, and for l = 0..L-1 ``layers.{l}.W`` (V, V) query x key, ``layers.{l}.V`` (V, V)
context token -> residual direction, ``layers.{l}.P`` (T,) offset m = t - j. The leading terms
are the same for every layer, so every layer's entry is the *same* tensor object (clone before
writing them to one safetensors file or mutating them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from leadingterms.errors import LeadingTermsError

PARAM_KINDS = ("W", "V", "P")

LOOSE_BOUNDS_NOTE = (
    "note: the paper's bounds are loose; with corpus statistics this small they exceed the "
    "leading term itself already at s*eta ~ 0.1 (SPEC §3), so report them but do not rely on them"
)


class BasisLike(Protocol):
    """What the predictions read from :class:`leadingterms.basis.Basis` (SPEC §2)."""

    B_bar: Tensor  # (V, V) row = current token, col = next token
    Phi_bar: Tensor  # (V, V) row = next token, col = context token
    Q_bar: Tensor  # (V, V) row = query token, col = key token
    Delta: Tensor  # (T,) Delta[m], offset m = t - j
    Pi: Tensor  # (V,) pi_a = frequency of a as current token
    A_bar: Tensor  # (V, V) row = context token, col = query token
    T: int
    V: int

    def value_direction(self) -> Tensor: ...  # Phi_bar^T B_bar^T (V, V)


# ----------------------------------------------------------------------------- coefficients


def c_s(s: int) -> int:
    """c(s) = 3C(s,4) + 2C(s,3) = s(s-1)(s-2)(3s-1)/24 = sum_{r<s} r C(r,2) (SPEC.md §3, line 87)."""
    return 3 * math.comb(s, 4) + 2 * math.comb(s, 3)


def S2(s: int) -> int:
    """S_2(s) = sum_{r<s} r^2 = 2C(s,3) + C(s,2) (SPEC §4)."""
    return 2 * math.comb(s, 3) + math.comb(s, 2)


def check_schedule(steps: int, lr: float, layers: int) -> None:
    """One-line error unless steps >= 1, lr > 0 (finite) and layers >= 1."""
    if int(steps) != steps or steps < 1:
        raise LeadingTermsError(f"steps must be an integer >= 1, got {steps}")
    if not (math.isfinite(lr) and lr > 0):
        raise LeadingTermsError(f"learning rate must be a finite number > 0, got {lr}")
    if int(layers) != layers or layers < 1:
        raise LeadingTermsError(f"layers must be an integer >= 1, got {layers}")


def layered(W_O: Tensor, W: Tensor, V: Tensor, P: Tensor, layers: int) -> dict[str, Tensor]:
    """Parameter-name dict with the same W, V, P (same tensor objects) for every layer."""
    out = {"W_O": W_O}
    for l in range(layers):
        out[f"layers.{l}.W"] = W
        out[f"layers.{l}.V"] = V
        out[f"layers.{l}.P"] = P
    return out


# ----------------------------------------------------------------------------- predictions


def closed_form(basis: BasisLike, steps: int, lr: float, layers: int) -> dict[str, Tensor]:
    """Leading terms after ``steps`` steps of full-batch GD from zero (SPEC.md §3, lines 82-90), every layer:

        W_O = s η B̄                       (V, V)
        V   = C(s,2) η² Φ̄ᵀB̄ᵀ              (V, V) row = context token, col = residual direction
        W   = c(s) η⁴ Q̄                    (V, V) row = query token, col = key token
        P   = c(s) η⁴ Δ                    (T,)
    """
    check_schedule(steps, lr, layers)
    s, eta = int(steps), float(lr)
    c = c_s(s)
    return layered(
        W_O=(s * eta) * basis.B_bar,
        W=(c * eta**4) * basis.Q_bar,
        V=(math.comb(s, 2) * eta**2) * basis.value_direction(),
        P=(c * eta**4) * basis.Delta,
        layers=layers,
    )


def _row_centred_square(Z: Tensor) -> Tensor:
    """H(Z) = Z∘Z − rowmean(Z∘Z) (SPEC §4), same shape as Z."""
    sq = Z * Z
    return sq - sq.mean(dim=1, keepdim=True)


def second_order_corrections(basis: BasisLike, steps: int, lr: float, layers: int) -> tuple[Tensor, Tensor]:
    """The next Taylor terms beyond §3 (SPEC.md §4, lines 115-123), returned as (dW_O, dV), both (V, V):

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


def second_order(basis: BasisLike, steps: int, lr: float, layers: int) -> dict[str, Tensor]:
    """SPEC §4: W_O and V through their next Taylor terms; W, P are the §3 leading terms."""
    pred = closed_form(basis, steps, lr, layers)
    dW_O, dV = second_order_corrections(basis, steps, lr, layers)
    l0 = pred["layers.0.V"]
    return layered(W_O=pred["W_O"] + dW_O, W=pred["layers.0.W"], V=l0 + dV, P=pred["layers.0.P"], layers=layers)


def predict(basis: BasisLike, steps: int, lr: float, layers: int, order: int = 1) -> dict[str, Tensor]:
    """``closed_form`` (order 1) or ``second_order`` (order 2)."""
    if order not in (1, 2):
        raise LeadingTermsError(f"order must be 1 or 2, got {order}")
    return (closed_form if order == 1 else second_order)(basis, steps, lr, layers)


def paper_bounds(steps: int, lr: float, T: int) -> dict[str, float]:
    """The paper's Frobenius bounds on ‖learned − leading term‖_F (SPEC.md §3, line 97), per kind:
    W_O: 3s²η², V: 12s³η³, W: 13s⁵η⁵T, P: 13s⁵η⁵T. Loose: see ``LOOSE_BOUNDS_NOTE``."""
    s, eta = float(steps), float(lr)
    return {
        "W_O": 3 * s**2 * eta**2,
        "V": 12 * s**3 * eta**3,
        "W": 13 * s**5 * eta**5 * T,
        "P": 13 * s**5 * eta**5 * T,
    }


def compare(learned: Mapping[str, Tensor], predicted: Mapping[str, Tensor]) -> dict[str, dict[str, float]]:
    """Per parameter name present in both: Frobenius cosine ⟨A,B⟩_F/(‖A‖‖B‖) and the relative
    error ‖learned − predicted‖_F / ‖learned‖_F (SPEC.md §3 "Validation metric", line 104), in float64.

    Names whose learned weight is exactly zero are omitted. Where the prediction is exactly
    zero the cosine is reported as 0.0 (and rel is then 1.0).
    """
    out: dict[str, dict[str, float]] = {}
    for name, a in learned.items():
        if name not in predicted:
            continue
        A = a.detach().to(torch.float64).flatten()
        B = predicted[name].detach().to(device=A.device, dtype=torch.float64).flatten()
        na = float(torch.linalg.vector_norm(A))
        if na == 0.0:
            continue
        nb = float(torch.linalg.vector_norm(B))
        cos = float(A @ B) / (na * nb) if nb > 0 else 0.0
        rel = float(torch.linalg.vector_norm(A - B)) / na
        out[name] = {"cos": cos, "rel": rel}
    return out


# ----------------------------------------------------------------------------- shadow (§5)


def _as_batch(tokens: Any, V: int, T: int, device: torch.device) -> Tensor:
    """(B, T+1) integer batch as an int64 tensor on ``device``, with checked shape and ids."""
    if isinstance(tokens, Tensor):
        t = tokens
    else:
        arr = np.asarray(tokens)
        if not np.issubdtype(arr.dtype, np.integer):
            raise LeadingTermsError(f"shadow batch must hold integer token ids, got {arr.dtype}")
        t = torch.from_numpy(arr.astype(np.int64))
    if t.ndim != 2 or t.shape[1] != T + 1 or t.shape[0] < 1:
        raise LeadingTermsError(f"shadow batch must have shape (B, {T + 1}), got {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise LeadingTermsError(f"shadow batch must hold integer token ids, got {t.dtype}")
    t = t.to(device=device, dtype=torch.int64)
    if int(t.min()) < 0 or int(t.max()) >= V:
        raise LeadingTermsError(f"shadow batch holds token ids outside [0, {V})")
    return t


class Shadow:
    """Path-dependent leading terms of minibatch SGD (SPEC.md §5, lines 125-138), driven by the batches.

    Per optimizer step r with batch ℬ_r (its tokens (B, T+1); under gradient accumulation the
    union of the micro-batches), using the state *before* the update:

        W   ← W   + η Q̄_r(M_r),  P ← P + η Δ_r(M_r),   M_r = W_Oᵀ Vᵀ  (factored, never formed)
        V   ← V   + η Φ̄_rᵀ W_Oᵀ
        W_O ← W_O + η B̄_r

    where B̄_r, Φ̄_r, Q̄_r, Δ_r are the §2 statistics of ℬ_r normalised by |ℬ_r|·T. Every layer
    shares the same leading terms. With identical full batches this reproduces §3 exactly.
    """

    def __init__(self, V: int, T: int, layers: int, lr: float, *, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu") -> None:
        check_schedule(1, lr, layers)
        if V < 1 or T < 1:
            raise LeadingTermsError(f"shadow needs V >= 1 and T >= 1, got V={V}, T={T}")
        self.V, self.T, self.layers, self.lr = int(V), int(T), int(layers), float(lr)
        self.dtype, self.device = dtype, torch.device(device)
        z = lambda *shape: torch.zeros(*shape, dtype=dtype, device=self.device)  # noqa: E731
        self.W_O: Tensor = z(V, V)  # (V, V) current -> next
        self.V_: Tensor = z(V, V)  # (V, V) context -> residual direction (same for every layer)
        self.W: Tensor = z(V, V)  # (V, V) query x key
        self.P: Tensor = z(T)  # (T,) offset m = t - j
        self.step = 0

    def update(self, batch_tokens: Any) -> None:
        """Advance by one optimizer step whose batch is ``batch_tokens`` (B, T+1)."""
        from leadingterms.basis import attention_stats, bigram_context_stats

        batch = _as_batch(batch_tokens, self.V, self.T, self.device)
        eta = self.lr
        B_r, Phi_r, _, _ = bigram_context_stats(batch, self.V, dtype=self.dtype)
        B_r, Phi_r = B_r.to(self.device), Phi_r.to(self.device)
        W_O, Vv = self.W_O, self.V_  # state before this step's update
        wo_nonzero = bool(W_O.any())
        if wo_nonzero and bool(Vv.any()):
            Q_r, Delta_r = attention_stats(batch, self.V, (W_O.T, Vv.T), dtype=self.dtype)
            self.W = self.W + eta * Q_r.to(self.device)
            self.P = self.P + eta * Delta_r.to(self.device)
        if wo_nonzero:
            self.V_ = Vv + eta * (Phi_r.T @ W_O.T)
        self.W_O = W_O + eta * B_r
        self.step += 1

    def weights(self) -> dict[str, Tensor]:
        """Current shadow weights under the model's parameter names (layers share tensors)."""
        return layered(W_O=self.W_O, W=self.W, V=self.V_, P=self.P, layers=self.layers)

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors for checkpoint/resume (safetensors-ready): the four terms, step and lr."""
        return {
            "W_O": self.W_O.clone(),
            "V": self.V_.clone(),
            "W": self.W.clone(),
            "P": self.P.clone(),
            "step": torch.tensor([self.step], dtype=torch.int64),
            "lr": torch.tensor([self.lr], dtype=torch.float64),
        }

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore from :meth:`state_dict`, refusing a mismatched shape or learning rate."""
        missing = [k for k in ("W_O", "V", "W", "P", "step") if k not in state]
        if missing:
            raise LeadingTermsError(f"shadow state lacks {', '.join(missing)}")
        shapes = {"W_O": (self.V, self.V), "V": (self.V, self.V), "W": (self.V, self.V), "P": (self.T,)}
        for k, shape in shapes.items():
            if tuple(state[k].shape) != shape:
                raise LeadingTermsError(f"shadow state {k} has shape {tuple(state[k].shape)}, expected {shape}")
        if "lr" in state and not math.isclose(float(state["lr"].reshape(-1)[0]), self.lr, rel_tol=1e-12):
            raise LeadingTermsError(
                f"shadow state was built with lr={float(state['lr'].reshape(-1)[0])}, this shadow has lr={self.lr}"
            )
        conv = lambda t: t.detach().to(dtype=self.dtype, device=self.device).clone()  # noqa: E731
        self.W_O, self.V_ = conv(state["W_O"]), conv(state["V"])
        self.W, self.P = conv(state["W"]), conv(state["P"])
        self.step = int(state["step"].reshape(-1)[0])


# ----------------------------------------------------------------------------- CLI stage


@dataclass
class PredictConfig:
    """``leadingterms predict``: stats dir (from ``leadingterms stats``) -> predicted weights."""

    stats: Path
    steps: int
    lr: float
    layers: int
    out: Path
    order: int = 1


def run_predict(cfg: PredictConfig) -> dict[str, Any]:
    """Load the basis, write the predicted weights (safetensors + JSON metadata) to ``cfg.out``.

    Returns the metadata written: steps, lr, layers, order, corpus_hash, bounds, norms.
    """
    from leadingterms.basis import load_basis
    from leadingterms.persist import save_tensors

    check_schedule(cfg.steps, cfg.lr, cfg.layers)
    if cfg.order not in (1, 2):
        raise LeadingTermsError(f"order must be 1 or 2, got {cfg.order}")
    if not Path(cfg.stats).is_dir():
        raise LeadingTermsError(f"stats directory not found: {cfg.stats} (make one with `leadingterms stats`)")
    basis = load_basis(cfg.stats)
    pred = predict(basis, cfg.steps, cfg.lr, cfg.layers, cfg.order)
    bounds = paper_bounds(cfg.steps, cfg.lr, basis.T)
    norms = {k: float(torch.linalg.vector_norm(v.to(torch.float64))) for k, v in pred.items()}
    meta_b = getattr(basis, "meta", {}) or {}
    corpus_hash = meta_b.get("corpus_hash") or meta_b.get("content_hash")
    meta = {
        "kind": "leadingterms.predict",
        "steps": int(cfg.steps),
        "lr": float(cfg.lr),
        "layers": int(cfg.layers),
        "order": int(cfg.order),
        "corpus_hash": corpus_hash,
        "V": int(basis.V),
        "T": int(basis.T),
        "bounds": bounds,
        "bounds_note": LOOSE_BOUNDS_NOTE,
        "norms": norms,
    }
    # layers share tensors in memory; safetensors refuses shared storage, so clone per layer
    save_tensors(cfg.out, {k: v.clone() for k, v in pred.items()}, metadata=meta)
    return meta
