"""Causal intervention (SPEC §6): how much of the dataset loss rests on each predicted direction.

For every weight θ of a trained model (W_O and, per layer l, W^(l), V^(l), P^(l)) and its
predicted direction T (SPEC §3)::

    W_O    -> B̄              (V, V) row = current token, col = next token
    V^(l)  -> Φ̄ᵀB̄ᵀ           (V, V) row = context token, col = residual direction
    W^(l)  -> Q̄              (V, V) row = query token, col = key token
    P^(l)  -> Δ              (T,)   Δ[m] = offset m = t − j

the dataset loss (mean cross-entropy over the given sequences) is evaluated

- ``original``: as trained;
- ``removed``: with θ ← θ − (⟨θ,T⟩_F / ‖T‖²_F)·T (the projection on T removed; the rest kept);
- ``replaced``: with θ replaced by its closed-form prediction at step S (``coef(S)·T``).

Only that one weight changes per row; the others stay as trained. :func:`intervene` is pure over
(model, basis, tokens): it restores the model's weights before returning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from leadingterms.errors import LeadingTermsError

INTERVENTION_FILE = "intervention.json"

#: weight kind -> (name of the predicted direction, how it is computed from a basis)
DIRECTION_NAMES = {"W_O": "B̄", "V": "Φ̄ᵀB̄ᵀ", "W": "Q̄", "P": "Δ"}


def predicted_directions(basis: Any, layers: int) -> dict[str, Tensor]:
    """Parameter name -> predicted direction T (float64), for W_O and every layer's W, V, P."""
    VD = basis.value_direction()
    out = {"W_O": basis.B_bar}
    for l in range(layers):
        out[f"layers.{l}.W"] = basis.Q_bar
        out[f"layers.{l}.V"] = VD
        out[f"layers.{l}.P"] = basis.Delta
    return {k: v.detach().to(torch.float64) for k, v in out.items()}


def projection_coefficient(W: Tensor, T: Tensor) -> float:
    """⟨W,T⟩_F / ‖T‖²_F (0 when T = 0), in float64."""
    T64 = T.detach().to("cpu", torch.float64)
    denom = float((T64 * T64).sum())
    if denom == 0.0:
        return 0.0
    return float((W.detach().to("cpu", torch.float64) * T64).sum()) / denom


def project_out(W: Tensor, T: Tensor) -> Tensor:
    """W − (⟨W,T⟩_F/‖T‖²_F)·T in float64 (same shape as W): the part of W orthogonal to T."""
    if W.shape != T.shape:
        raise LeadingTermsError(f"weight of shape {tuple(W.shape)} and direction {tuple(T.shape)} differ")
    return W.detach().to("cpu", torch.float64) - projection_coefficient(W, T) * T.detach().to("cpu", torch.float64)


def dataset_loss(model: Any, tokens: Any, *, batch_size: int = 64) -> float:
    """Mean cross-entropy of ``model`` over every row of ``tokens`` (N, T+1), in batches, no grad."""
    from leadingterms.training.runner import mean_loss

    device = next(model.parameters()).device
    return float(mean_loss(model, np.asarray(tokens), device, max(1, int(batch_size))))


def _kind_layer(name: str) -> tuple[str, int | None]:
    if name == "W_O":
        return "W_O", None
    _, l, kind = name.split(".")
    return kind, int(l)


def intervene(model: Any, basis: Any, tokens: Any, *, step: int, lr: float,
              batch_size: int = 64) -> dict[str, Any]:
    """Dataset loss originally, with each weight's projection on its prediction removed, and with
    each weight replaced by its closed-form prediction at ``step`` (learning rate ``lr``).

    model: an AttentionOnlyTransformer (weights restored on return); basis: its corpus's Basis
    (same V, T); tokens: (N, T+1) sequences the loss is measured on.

    -> {"step", "lr", "n_sequences", "original_loss", "rows": [{"param", "kind", "layer",
    "direction", "projection_coef", "cos", "loss_removed", "loss_replaced"}, ...]}, rows in
    parameter order (W_O, then per layer W, V, P).
    """
    from leadingterms.predict import closed_form

    weights = {k: v.detach().clone() for k, v in model.named_parameters()}
    layers = sum(1 for k in weights if k.endswith(".W"))
    if "W_O" not in weights or basis.B_bar.shape != weights["W_O"].shape:
        raise LeadingTermsError(
            f"the basis (V={basis.V}) does not match the model (W_O {tuple(weights['W_O'].shape)})"
        )
    if basis.Delta.shape != weights["layers.0.P"].shape:
        raise LeadingTermsError(
            f"the basis (T={basis.T}) does not match the model (P {tuple(weights['layers.0.P'].shape)})"
        )
    directions = predicted_directions(basis, layers)
    predicted = closed_form(basis, step, lr, layers)
    params = dict(model.named_parameters())

    def loss_with(name: str, value: Tensor) -> float:
        p = params[name]
        with torch.no_grad():
            p.copy_(value.to(device=p.device, dtype=p.dtype))
        try:
            return dataset_loss(model, tokens, batch_size=batch_size)
        finally:
            with torch.no_grad():
                p.copy_(weights[name])

    original = dataset_loss(model, tokens, batch_size=batch_size)
    rows = []
    order = ["W_O"] + [f"layers.{l}.{k}" for l in range(layers) for k in ("W", "V", "P")]
    for name in order:
        W, T = weights[name], directions[name]
        kind, layer = _kind_layer(name)
        w64 = W.to("cpu", torch.float64)
        nw, nt = float(w64.norm()), float(T.norm())
        cos = float((w64 * T).sum()) / (nw * nt) if nw > 0 and nt > 0 else float("nan")
        rows.append({
            "param": name,
            "kind": kind,
            "layer": layer,
            "direction": DIRECTION_NAMES[kind],
            "projection_coef": projection_coefficient(W, T),
            "cos": cos if math.isfinite(cos) else None,
            "loss_removed": loss_with(name, project_out(W, T)),
            "loss_replaced": loss_with(name, predicted[name]),
        })
    return {"step": int(step), "lr": float(lr), "n_sequences": int(np.asarray(tokens).shape[0]),
            "original_loss": original, "rows": rows}


def format_table(result: Mapping[str, Any]) -> str:
    """The intervention result as a fixed-width table (one row per weight and layer)."""
    o = float(result["original_loss"])
    head = (f"dataset loss over {result['n_sequences']} sequences at step {result['step']} "
            f"(lr {result['lr']:g}); original {o:.6f}")
    cols = f"{'weight':<12} {'direction':<9} {'cos':>8} {'projection removed':>20} {'Δloss':>10} " \
           f"{'closed form':>12} {'Δloss':>10}"
    lines = [head, cols, "-" * len(cols)]
    for r in result["rows"]:
        cos = "n/a" if r["cos"] is None else f"{r['cos']:.4f}"
        lines.append(f"{r['param']:<12} {r['direction']:<9} {cos:>8} {r['loss_removed']:>20.6f} "
                     f"{r['loss_removed'] - o:>+10.2e} {r['loss_replaced']:>12.6f} "
                     f"{r['loss_replaced'] - o:>+10.2e}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI stage


@dataclass
class InterventionConfig:
    """``leadingterms intervene``: run directory, checkpoint step (None = the latest), how many
    training sequences to evaluate the loss on (None = all), batch size and device."""

    run: str
    step: int | None = None
    max_sequences: int | None = None
    batch_size: int = 64
    device: str = "cpu"


def run_intervention(cfg: InterventionConfig) -> dict[str, Any]:
    """Load RUN's checkpoint, basis and corpus, run :func:`intervene`, write RUN/intervention.json."""
    from leadingterms.corpus.store import load_store
    from leadingterms.persist import write_json
    from leadingterms.progress import resolve_device
    from leadingterms.training import load_run

    for name in ("max_sequences", "batch_size"):
        v = getattr(cfg, name)
        if v is not None and (not isinstance(v, int) or v < 1):
            raise LeadingTermsError(f"--{name.replace('_', '-')} must be a positive integer, got {v!r}")
    run = load_run(cfg.run)
    step = cfg.step if cfg.step is not None else max(run.checkpoints, default=None)
    if step == 0:
        raise LeadingTermsError("step 0 is the initialisation (nothing learned yet); choose a later checkpoint")
    model = run.load_checkpoint(step, device=resolve_device(cfg.device))  # one-line error if absent
    step = int(step if step is not None else 0)
    basis = run.basis()
    store = load_store(run.config.corpus)
    tokens = store.tokens if cfg.max_sequences is None else store.tokens[: cfg.max_sequences]
    if basis.V != store.V or basis.T != store.T:
        raise LeadingTermsError(f"the run's basis (V={basis.V}, T={basis.T}) does not match its corpus "
                                f"{store.path} (V={store.V}, T={store.T})")
    result = intervene(model, basis, tokens, step=step, lr=run.config.lr, batch_size=cfg.batch_size)
    result["run"] = str(Path(cfg.run))
    result["corpus"] = str(store.path)
    result["definitions"] = {
        "loss_removed": "loss with W <- W - (<W,T>_F/||T||_F^2) T for that one weight (T = B_bar for W_O, "
                        "Phi_bar^T B_bar^T for V, Q_bar for W, Delta for P)",
        "loss_replaced": "loss with that one weight replaced by its closed-form prediction at `step` (SPEC §3)",
        "cos": "Frobenius cosine between the trained weight and T",
    }
    write_json(Path(cfg.run) / INTERVENTION_FILE, result)
    return result
