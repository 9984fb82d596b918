"""The path-dependent leading terms of minibatch SGD, the "shadow" (docs/theory.md §5).

Step r with batch ℬ_r (its token rows (B, T+1); under gradient accumulation the union of the
micro-batches) updates, using the state *before* the update::

    W   ← W   + η Q̄_r(M_r),  P ← P + η Δ_r(M_r),   M_r = W_Oᵀ Vᵀ  (never formed)
    V   ← V   + η Φ̄_rᵀ W_Oᵀ
    W_O ← W_O + η B̄_r

where B̄_r, Φ̄_r, Q̄_r, Δ_r are the §2 statistics of ℬ_r normalised by |ℬ_r|·T. Every layer
shares the same leading terms. With identical full batches this reproduces the closed forms of §3.

**Cost of a step** (docs/theory.md §5, "How it is computed", (5.5)). Let ``ids`` be the Vc distinct
tokens of the batch. The batch's raw sums are compact (Vc, Vc) blocks (C, Φ) and the centrings
are rank one, so every increment lives in the rows ``ids`` (and for W in the block ids × ids):

    ΔW_O[ids, :]  = (C[:, ids-cols] − u·c 1ᵀ)/NT                  (Vc, V)
    ΔV[ids, :]    = ((W_O[:, ids] Φ/NT)ᵀ − u·colsum(Φ/NT) rᵀ)       (Vc, V),  r = W_O 1
    M'[ids, ids]  = (W_O[:, ids] − u·r 1ᵀ)ᵀ V[ids, :]ᵀ              (Vc, Vc)  -> Q̄_r, Δ_r

so a step costs two (Vc × V × Vc) products plus O(Vc·V + B·T²) gathers and scatters, instead of
the V³ of a dense Φ̄_rᵀ W_Oᵀ. ``r`` (the row sums of W_O) is kept up to date row by row.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from leadingterms.errors import LeadingTermsError
from leadingterms.theory import layered
from leadingterms.validate import check_schedule, positive_int, token_rows

#: Pair work (rows · T(T+1)/2) below which a step's gathers and scatter-adds run on one CPU thread:
#: they are many small operations, whose thread synchronisation would cost more than it saves.
SMALL_PAIR_WORK = 1 << 20


@contextlib.contextmanager
def _one_thread_if(small: bool) -> Iterator[None]:
    n = torch.get_num_threads()
    if small and n > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


@dataclass
class ShadowStep:
    """The increments of one shadow step (before the factor η), in the rows of the batch's tokens.

    ``ids`` (Vc,) token ids; ``W_O`` (Vc, V) rows ids of ΔW_O = B̄_r; ``V`` (Vc, V) rows ids of
    ΔV = Φ̄_rᵀ W_Oᵀ; ``W`` (Vc, Vc) block ids × ids of ΔW = Q̄_r(M_r); ``P`` (T,) ΔP = Δ_r(M_r).
    Every other entry of the increments is zero.
    """

    ids: Tensor
    W_O: Tensor
    V: Tensor
    W: Tensor
    P: Tensor


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
        self.rowsum: Tensor = z(V)  # (V,) W_O 1, kept up to date for the rows each step changes
        self.step = 0

    def _batch(self, tokens: Any) -> Any:
        """(B, T+1) integer rows, shape and ids checked (on the CPU when they come from numpy)."""
        return token_rows(tokens, what="shadow batch", width=self.T + 1, V=self.V)

    @staticmethod
    def state_bytes(V: int, T: int) -> int:
        """Bytes of the float64 state (W_O, V, W, P and the row sums of W_O)."""
        return 8 * (3 * V * V + T + V)

    def increments(self, batch_tokens: Any) -> ShadowStep:
        """The increments of the step whose batch is ``batch_tokens`` (B, T+1), from the current
        state (which is not changed; :meth:`apply` adds them)."""
        from leadingterms.basis.stats import batch_sums

        tokens = self._batch(batch_tokens)
        small = self.device.type == "cpu" and tokens.shape[0] * self.T * (self.T + 1) // 2 <= SMALL_PAIR_WORK
        with _one_thread_if(small):
            s = batch_sums(tokens, self.V, dtype=self.dtype, device=self.device)
        ids, NT, u = s.ids, s.NT, 1.0 / self.V
        W_O_cols = self.W_O.index_select(1, ids)  # (V, Vc): W_O[:, b], b in ids
        r = self.rowsum
        Mc = (W_O_cols.T - u * r[None, :]) @ self.V_.index_select(0, ids).T  # (Vc, Vc) = M'[ids, ids]
        with _one_thread_if(small):
            Q, Delta = s.attention(Mc)
        Phi = s.Phi.div_(NT)  # (Vc, Vc) row = next, col = context: Φ̄_r without its rank-one centring
        dV = (W_O_cols @ Phi).T.addr_(Phi.sum(0), r, alpha=-u)  # (Vc, V) rows ids of Φ̄_rᵀ W_Oᵀ
        dW_O = torch.zeros(len(ids), self.V, dtype=self.dtype, device=self.device)
        dW_O.index_copy_(1, ids, s.counts.div_(NT)).sub_(s.c.div_(NT)[:, None], alpha=u)  # rows ids of B̄_r
        return ShadowStep(ids=ids, W_O=dW_O, V=dV, W=Q.div_(NT), P=Delta.div_(NT))

    def apply(self, inc: ShadowStep) -> None:
        """Add η times the increments ``inc`` (from :meth:`increments` on this state)."""
        eta, ids = self.lr, inc.ids
        self.W.index_put_((ids[:, None], ids[None, :]), inc.W.mul(eta), accumulate=True)
        self.P.add_(inc.P, alpha=eta)
        self.V_.index_add_(0, ids, inc.V, alpha=eta)
        self.W_O.index_add_(0, ids, inc.W_O, alpha=eta)
        self.rowsum.index_copy_(0, ids, self.W_O.index_select(0, ids).sum(1))
        self.step += 1

    def update(self, batch_tokens: Any) -> None:
        """Advance by one optimizer step whose batch is ``batch_tokens`` (B, T+1)."""
        self.apply(self.increments(batch_tokens))

    def weights(self) -> dict[str, Tensor]:
        """Current shadow weights under the model's parameter names (layers share tensors)."""
        return layered({"W_O": self.W_O, "W": self.W, "V": self.V_, "P": self.P}, self.layers)

    def state_dict(self, *, clone: bool = True) -> dict[str, Tensor]:
        """Tensors for checkpoint/resume (safetensors-ready): the four terms, the row sums of W_O,
        step and lr (``clone=False``: the live tensors, for a caller that copies them itself)."""
        c = (lambda t: t.clone()) if clone else (lambda t: t)  # noqa: E731
        return {
            "W_O": c(self.W_O),
            "V": c(self.V_),
            "W": c(self.W),
            "P": c(self.P),
            "W_O_rowsum": c(self.rowsum),
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
        self.rowsum = conv(state["W_O_rowsum"]) if "W_O_rowsum" in state else self.W_O.sum(1)
        self.step = int(state["step"].reshape(-1)[0])
