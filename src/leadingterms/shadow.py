"""The path-dependent leading terms of minibatch SGD, the "shadow" (docs/theory.md §5).

Step r with batch ℬ_r (its token rows (B, T+1); under gradient accumulation the union of the
micro-batches) updates, using the state *before* the update::

    W   ← W   + η Q̄_r(M_r),  P ← P + η Δ_r(M_r),   M_r = W_Oᵀ Vᵀ  (never formed)
    V   ← V   + η Φ̄_rᵀ W_Oᵀ
    W_O ← W_O + η B̄_r

where B̄_r, Φ̄_r, Q̄_r, Δ_r are the §2 statistics of ℬ_r normalised by |ℬ_r|·T. Every layer
shares the same leading terms. With identical full batches this reproduces the closed forms of §3.

**How a step is computed** (docs/theory.md §5, (5.5)). W_O is kept as its sparse part: since
B̄_r = (C_r − u·c_r 1ᵀ)/(|ℬ_r|·T) with C_r the batch's bigram counts,

    W_O = S − u·q 1ᵀ,   S = η Σ_r C_r/(|ℬ_r|·T)  (V, V), row = current token, col = next token,
                        q = η Σ_r c_r/(|ℬ_r|·T) = S 1,

so a step adds to S only at the batch's bigram cells and to q at its tokens. Let ``ids`` be the
Vc distinct tokens of the batch, Φ its raw context sums (Vc, Vc) divided by |ℬ_r|·T, and
S[:, ids] the columns of S of those tokens (rows of the stored Sᵀ: a contiguous gather). Then

    M'_r[ids, ids] = S[:, ids]ᵀ V[ids, :]ᵀ − u·1 (V[ids, :] q)ᵀ      (Vc, Vc)   -> Q̄_r, Δ_r
    ΔV[ids, :]    = Φᵀ S[:, ids]ᵀ − u·colsum(Φ) qᵀ                    (Vc, V)

(the row centring of W_O drops out of both: Φ̄_r has zero column sums, (2.19), and M' is
column-centred), two (Vc × V × Vc) products plus O(Vc·V + |ℬ_r|·T²) gathers and scatter-adds
per step instead of the V³ of a dense Φ̄_rᵀ W_Oᵀ. Equal to the dense recursion to rounding.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import Prediction
from leadingterms.theory import layered
from leadingterms.validate import check_schedule, positive_int, token_rows

#: Pair work (rows · T(T+1)/2) below which a step's gathers and scatter-adds run on one CPU thread:
#: they are many small operations, whose thread synchronisation would cost more than it saves.
SMALL_PAIR_WORK = 1 << 20


#: Density of S's gathered columns below which the two products of a step go through a sparse (CSR)
#: matrix on the CPU, O(nnz·Vc), instead of dense ones, O(Vc²·V). S holds only the bigrams seen.
SPARSE_DENSITY = 0.05


def _csr(rows: Tensor, cols: Tensor, vals: Tensor, shape: tuple[int, int]) -> Tensor:
    """A CSR matrix of ``shape`` from entries sorted by (row, col)."""
    crow = torch.zeros(shape[0] + 1, dtype=torch.int64)
    crow[1:] = torch.bincount(rows, minlength=shape[0]).cumsum(0)
    with warnings.catch_warnings():  # torch flags its CSR support as beta
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, cols, vals, shape, check_invariants=False)


def _products(S_cols: Tensor, V_rows: Tensor, Phi: Tensor) -> tuple[Tensor, Tensor]:
    """(S_cols @ V_rowsᵀ (Vc, Vc), Φᵀ @ S_cols (Vc, V)) for S_cols (Vc, V), V_rows (Vc, V), Φ (Vc, Vc)."""
    if S_cols.device.type == "cpu":
        nz = torch.nonzero(S_cols)  # sorted by (row, col)
        if nz.shape[0] <= SPARSE_DENSITY * S_cols.numel():
            r, c = nz[:, 0], nz[:, 1]
            vals = S_cols[r, c]
            Vc, V = S_cols.shape
            by_col = torch.argsort(c * Vc + r)  # the entries of S_colsᵀ, sorted by (col, row)
            rows = _csr(r, c, vals, (Vc, V))
            cols = _csr(c[by_col], r[by_col], vals[by_col], (V, Vc))
            return rows @ V_rows.T, (cols @ Phi).T
    return S_cols @ V_rows.T, Phi.T @ S_cols


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

    ``ids`` (Vc,) token ids; ``C`` (Vc, Vc) bigram counts / (|ℬ_r|·T), row = current, col = next,
    and ``c`` (Vc,) current-token counts / (|ℬ_r|·T): ΔW_O = B̄_r = C − u·c 1ᵀ in rows ids; ``V``
    (Vc, V) rows ids of ΔV = Φ̄_rᵀ W_Oᵀ; ``W`` (Vc, Vc) block ids × ids of ΔW = Q̄_r(M_r); ``P`` (T,)
    ΔP = Δ_r(M_r). Every other entry of the increments is zero.
    """

    ids: Tensor
    C: Tensor
    c: Tensor
    V: Tensor
    W: Tensor
    P: Tensor


class Shadow:
    """The shadow weights W_O, V, W, P (shared by every layer), advanced one optimizer step at a time.

    State (float64): ``S_T`` (V, V) = Sᵀ, row = next token, col = current token; ``q`` (V,); ``V_``
    (V, V) row = context token, col = residual direction; ``W`` (V, V) row = query, col = key;
    ``P`` (T,) offset m = t − j. ``W_O = S − u·q 1ᵀ`` is formed by :meth:`weights`.
    """

    def __init__(self, V: int, T: int, layers: int, lr: float, *, dtype: torch.dtype = torch.float64,
                 device: str | torch.device = "cpu") -> None:
        check_schedule(1, lr, layers)
        positive_int(V, "V")
        positive_int(T, "T")
        self.V, self.T, self.layers, self.lr = int(V), int(T), int(layers), float(lr)
        self.dtype, self.device = dtype, torch.device(device)
        z = lambda *shape: torch.zeros(*shape, dtype=dtype, device=self.device)  # noqa: E731
        self.S_T: Tensor = z(V, V)  # (V, V) Sᵀ: row = next token, col = current token
        self.q: Tensor = z(V)  # (V,) S 1, per current token
        self.V_: Tensor = z(V, V)  # (V, V) context -> residual direction (same for every layer)
        self.W: Tensor = z(V, V)  # (V, V) query x key
        self.P: Tensor = z(T)  # (T,) offset m = t - j
        self.step = 0

    def _batch(self, tokens: Any) -> Any:
        """(B, T+1) integer rows, shape and ids checked (on the CPU when they come from numpy)."""
        return token_rows(tokens, what="shadow batch", width=self.T + 1, V=self.V)

    @staticmethod
    def state_bytes(V: int, T: int) -> int:
        """Bytes of the float64 state in memory (Sᵀ, V, W, q, P)."""
        return 8 * (3 * V * V + T + V)

    @staticmethod
    def checkpoint_bytes(V: int, T: int, bigrams: int) -> int:
        """Bytes of :meth:`state_dict` on disk with at most ``bigrams`` nonzero entries of S."""
        return 8 * (2 * V * V + T + V + 2) + 16 * min(bigrams, V * V)

    def increments(self, batch_tokens: Any) -> ShadowStep:
        """The increments of the step whose batch is ``batch_tokens`` (B, T+1), from the current
        state (which is not changed; :meth:`apply` adds them)."""
        from leadingterms.basis.stats import batch_sums

        tokens = self._batch(batch_tokens)
        small = self.device.type == "cpu" and tokens.shape[0] * self.T * (self.T + 1) // 2 <= SMALL_PAIR_WORK
        with _one_thread_if(small):
            s = batch_sums(tokens, self.V, dtype=self.dtype, device=self.device)
        ids, NT, u = s.ids, s.NT, 1.0 / self.V
        S_cols = self.S_T.index_select(0, ids)  # (Vc, V): S[:, b]ᵀ, b in ids
        V_rows = self.V_.index_select(0, ids)  # (Vc, V)
        Phi = s.Phi.div_(NT)  # (Vc, Vc) row = next, col = context: Φ̄_r without its rank-one centring
        SV, PhiS = _products(S_cols, V_rows, Phi)
        Mc = SV.sub_((V_rows @ self.q)[None, :], alpha=u)  # (Vc, Vc) = M'[ids, ids]
        with _one_thread_if(small):
            Q, Delta = s.attention(Mc)
        dV = PhiS.contiguous().addr_(Phi.sum(0), self.q, alpha=-u)  # (Vc, V) rows ids of Φ̄_rᵀ W_Oᵀ
        return ShadowStep(ids=ids, C=s.counts.div_(NT), c=s.c.div_(NT), V=dV, W=Q.div_(NT), P=Delta.div_(NT))

    def apply(self, inc: ShadowStep) -> None:
        """Add η times the increments ``inc`` (from :meth:`increments` on this state)."""
        eta, ids, V = self.lr, inc.ids, self.V
        nz = torch.nonzero(inc.C)  # the batch's bigrams (current, next) in compact ids
        self.S_T.view(-1).index_add_(0, ids[nz[:, 1]] * V + ids[nz[:, 0]], inc.C[nz[:, 0], nz[:, 1]], alpha=eta)
        self.q.index_add_(0, ids, inc.c, alpha=eta)
        self.W.view(-1).index_add_(0, (ids[:, None] * V + ids[None, :]).reshape(-1), inc.W.reshape(-1), alpha=eta)
        self.P.add_(inc.P, alpha=eta)
        self.V_.index_add_(0, ids, inc.V, alpha=eta)
        self.step += 1

    def update(self, batch_tokens: Any) -> None:
        """Advance by one optimizer step whose batch is ``batch_tokens`` (B, T+1)."""
        self.apply(self.increments(batch_tokens))

    def W_O_rows(self, i: int, j: int) -> Tensor:
        """Rows i..j-1 of W_O = S − u·q 1ᵀ (row = current token, col = next token), a new tensor."""
        return self.S_T[:, i:j].T.sub(self.q[i:j, None], alpha=1.0 / self.V)

    def W_O(self) -> Tensor:
        """W_O (V, V), row = current token, col = next token (a new tensor)."""
        return self.W_O_rows(0, self.V)

    def weights(self) -> dict[str, Tensor]:
        """Current shadow weights under the model's parameter names (layers share tensors)."""
        return layered({"W_O": self.W_O(), "W": self.W, "V": self.V_, "P": self.P}, self.layers)

    def weight_rows(self) -> dict[str, Prediction]:
        """:meth:`weights` with W_O as ``rows(i, j)`` (rows i..j-1 of S − u·q 1ᵀ), for
        :func:`leadingterms.metrics.compare_many`: no (V, V) copy of W_O is formed."""
        return layered({"W_O": self.W_O_rows, "W": self.W, "V": self.V_, "P": self.P}, self.layers)

    def state_dict(self, *, clone: bool = True) -> dict[str, Tensor]:
        """Tensors for checkpoint/resume (safetensors-ready): S as its nonzero entries (``S_index``, flat
        row-major indices into Sᵀ, and ``S_value``), q, V, W, P, step and lr (``clone=False``: the live
        dense tensors, for a caller that copies them itself)."""
        c = (lambda t: t.clone()) if clone else (lambda t: t)  # noqa: E731
        flat = self.S_T.reshape(-1)
        index = torch.nonzero(flat).reshape(-1)
        return {
            "S_index": index,
            "S_value": flat[index],
            "q": c(self.q),
            "V": c(self.V_),
            "W": c(self.W),
            "P": c(self.P),
            "step": torch.tensor([self.step], dtype=torch.int64),
            "lr": torch.tensor([self.lr], dtype=torch.float64),
        }

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        """Restore from :meth:`state_dict`, refusing a mismatched shape or learning rate."""
        missing = [k for k in ("S_index", "S_value", "q", "V", "W", "P", "step") if k not in state]
        if missing:
            raise LeadingTermsError(f"shadow state lacks {', '.join(missing)}")
        shapes = {"V": (self.V, self.V), "W": (self.V, self.V), "P": (self.T,), "q": (self.V,)}
        for k, shape in shapes.items():
            if tuple(state[k].shape) != shape:
                raise LeadingTermsError(f"shadow state {k} has shape {tuple(state[k].shape)}, expected {shape}")
        index, value = state["S_index"].reshape(-1), state["S_value"].reshape(-1)
        if index.numel() != value.numel() or (index.numel() and not 0 <= int(index.min()) <= int(index.max())
                                              < self.V * self.V):
            raise LeadingTermsError(f"shadow state S_index does not address a ({self.V}, {self.V}) matrix")
        if "lr" in state and not math.isclose(float(state["lr"].reshape(-1)[0]), self.lr, rel_tol=1e-12):
            raise LeadingTermsError(
                f"shadow state was built with lr={float(state['lr'].reshape(-1)[0])}, this shadow has lr={self.lr}"
            )
        conv = lambda t: t.detach().to(dtype=self.dtype, device=self.device).clone()  # noqa: E731
        self.S_T = torch.zeros(self.V, self.V, dtype=self.dtype, device=self.device)
        self.S_T.view(-1)[index.to(self.device, torch.int64)] = value.to(self.device, self.dtype)
        self.q, self.V_, self.W, self.P = conv(state["q"]), conv(state["V"]), conv(state["W"]), conv(state["P"])
        self.step = int(state["step"].reshape(-1)[0])
