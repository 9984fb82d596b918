"""The path-dependent leading terms of minibatch SGD, the "shadow" (docs/theory.md §5).

Step r with batch ℬ_r (its token rows (B, T+1); under gradient accumulation the union of the
micro-batches) updates, using the state *before* the update::

    W   ← W   + η Q̄_r(M_r),  P ← P + η Δ_r(M_r),   M_r = W_Oᵀ Vᵀ  (factored, never formed)
    V   ← V   + η Φ̄_rᵀ W_Oᵀ
    W_O ← W_O + η B̄_r

where B̄_r, Φ̄_r, Q̄_r, Δ_r are the §2 statistics of ℬ_r normalised by |ℬ_r|·T. Every layer
shares the same leading terms. With identical full batches this reproduces the closed forms of §3.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from leadingterms.errors import LeadingTermsError
from leadingterms.theory import layered
from leadingterms.validate import check_schedule, positive_int, token_rows


class Shadow:
    """The shadow weights W_O, V, W, P (shared by every layer), advanced one optimizer step at a time."""

    def __init__(self, V: int, T: int, layers: int, lr: float, *, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu") -> None:
        check_schedule(1, lr, layers)
        positive_int(V, "V")
        positive_int(T, "T")
        self.V, self.T, self.layers, self.lr = int(V), int(T), int(layers), float(lr)
        self.dtype, self.device = dtype, torch.device(device)
        z = lambda *shape: torch.zeros(*shape, dtype=dtype, device=self.device)  # noqa: E731
        self.W_O: Tensor = z(V, V)  # (V, V) current -> next
        self.V_: Tensor = z(V, V)  # (V, V) context -> residual direction (same for every layer)
        self.W: Tensor = z(V, V)  # (V, V) query x key
        self.P: Tensor = z(T)  # (T,) offset m = t - j
        self.step = 0

    def _batch(self, tokens: Any) -> Tensor:
        """(B, T+1) integer rows as int64 on the shadow's device, shape and ids checked."""
        t = token_rows(tokens, what="shadow batch", width=self.T + 1, V=self.V)
        t = t if isinstance(t, Tensor) else torch.from_numpy(t.astype("int64"))
        return t.to(device=self.device, dtype=torch.int64)

    def update(self, batch_tokens: Any) -> None:
        """Advance by one optimizer step whose batch is ``batch_tokens`` (B, T+1)."""
        from leadingterms.basis import attention_stats, bigram_context_stats

        batch = self._batch(batch_tokens)
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
        return layered({"W_O": self.W_O, "W": self.W, "V": self.V_, "P": self.P}, self.layers)

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
