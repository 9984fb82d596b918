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

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from leadingterms.config import check_config, option
from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import Prediction
from leadingterms.theory import S2, WEIGHTS, BasisLike, layered, param_name, param_names, parse_param
from leadingterms.validate import (
    check_schedule,
    device_spec,
    out_file,
    positive_float,
    positive_int,
    resolve_device,
)

if TYPE_CHECKING:
    from leadingterms.basis import Basis

LOOSE_BOUNDS_NOTE = (
    "the paper's bounds are loose; with corpus statistics this small they exceed the "
    "leading term itself already at s*eta ~ 0.1 (docs/theory.md §3.5), so report them but do not rely on them"
)


class Predictions:
    """The closed forms (docs/theory.md §3) and second-order terms (§4) of one basis, at any (s, η).

    The fixed matrices are computed once, on first use, and every call only combines them with
    scalars (what a training run logs at every logged step):

    - closed form: the directions B̄, Φ̄ᵀB̄ᵀ (the value direction, one sparse product), Q̄, Δ;
    - second order: ΠH(B̄), B̄Φ̄Φ̄ᵀ, Φ̄ᵀB̄ᵀΠ and ĀB̄B̄ᵀ (V, V), whose rows/columns mean what the
      weight they correct means; the ΠB̄ and Π²B̄ terms are B̄ with rescaled rows.

    Memory: up to 5 (V, V) matrices besides the basis (:meth:`extra_bytes`). Tensors live on the
    basis's device.
    """

    def __init__(self, basis: BasisLike, layers: int) -> None:
        positive_int(layers, "layers")
        self.basis, self.layers = basis, int(layers)
        self._dirs: dict[str, Tensor] = {}
        self._fixed: dict[str, Tensor] = {}

    @staticmethod
    def extra_bytes(V: int, *, second_order: bool, itemsize: int = 8) -> int:
        """Bytes of the fixed matrices beyond the basis: the value direction, and with
        ``second_order`` the four (V, V) matrices of §4."""
        return itemsize * V * V * (5 if second_order else 1)

    def direction(self, kind: str) -> Tensor:
        """The predicted direction of ``kind`` (W_O, W, V, P), computed once."""
        if kind not in self._dirs:
            self._dirs[kind] = WEIGHTS[kind].direction_of(self.basis)
        return self._dirs[kind]

    def closed_form(self, steps: int, lr: float) -> dict[str, Tensor]:
        """(3.1)–(3.4) after ``steps`` steps at learning rate ``lr``, every layer (shared tensors)."""
        check_schedule(steps, lr, self.layers)
        return layered({k: w.coef(steps, lr) * self.direction(k) for k, w in WEIGHTS.items()}, self.layers)

    def _second_order_matrices(self) -> dict[str, Tensor]:
        if not self._fixed:
            b = self.basis
            B, Phi, A_bar = b.B_bar, b.Phi_bar, b.A_bar
            pi = b.Pi.to(B.dtype)
            value = self.direction("V")  # Φ̄ᵀB̄ᵀ = (B̄Φ̄)ᵀ
            self._fixed = {
                "PiH": pi[:, None] * _row_centred_square(B),  # Π H(B̄)
                "BPhiPhi": (Phi @ value).T.contiguous(),  # B̄Φ̄Φ̄ᵀ = (Φ̄ (B̄Φ̄)ᵀ)ᵀ
                "valuePi": value * pi[None, :],  # Φ̄ᵀB̄ᵀΠ
                "ABB": A_bar @ b.interchange_prev(),  # Ā B̄B̄ᵀ
            }
        return self._fixed

    def second_order_rows(self, steps: int, lr: float) -> dict[str, Prediction]:
        """W_O and V through their η³ terms (4.3), (4.4), as ``rows(i, j)`` callables that build rows i..j-1
        from the fixed matrices (for :func:`leadingterms.metrics.compare_many`, which compares them block
        by block); W and P keep their §3 terms (tensors):

            W_O = (sη − C(s,2)η²π/V + η³C(s,3)π²/V²) ∘rows B̄ − η³S₂(s)/(2V)·ΠH(B̄) + η³L·C(s,3)·B̄Φ̄Φ̄ᵀ
            V   = C(s,2)η²·Φ̄ᵀB̄ᵀ − η³C(s,3)/V·Φ̄ᵀB̄ᵀΠ − η³S₂(s)/V·ĀB̄B̄ᵀ
        """
        check_schedule(steps, lr, self.layers)
        f = self._second_order_matrices()
        s, eta, L = int(steps), float(lr), self.layers
        B = self.basis.B_bar
        Vn = B.shape[0]
        pi = self.basis.Pi.to(B.dtype)
        C2, C3, s2 = math.comb(s, 2), math.comb(s, 3), S2(s)
        row_coef = s * eta - (C2 * eta**2 / Vn) * pi + (eta**3 * C3 / Vn**2) * pi * pi  # (V,) per current token
        value, cV = self.direction("V"), WEIGHTS["V"].coef(s, eta)

        def W_O(i: int, j: int) -> Tensor:
            return (B[i:j] * row_coef[i:j, None]).add_(f["PiH"][i:j], alpha=-(eta**3) * s2 / (2 * Vn)).add_(
                f["BPhiPhi"][i:j], alpha=eta**3 * L * C3)

        def V(i: int, j: int) -> Tensor:
            return (cV * value[i:j]).add_(f["valuePi"][i:j], alpha=-(eta**3) * C3 / Vn).add_(
                f["ABB"][i:j], alpha=-(eta**3) * s2 / Vn)

        out = self.closed_form_rows(steps, lr)
        out["W_O"] = W_O
        out.update({param_name("V", l): V for l in range(L)})
        return out

    def closed_form_rows(self, steps: int, lr: float) -> dict[str, Prediction]:
        """:meth:`closed_form` as ``rows(i, j)`` callables (coef · rows of the direction) for the (V, V)
        weights, so that no scaled copy of a direction is formed; P as a tensor."""
        check_schedule(steps, lr, self.layers)

        def scaled(kind: str) -> Prediction:
            c, D = WEIGHTS[kind].coef(steps, lr), self.direction(kind)
            return c * D if D.ndim < 2 else (lambda i, j: D[i:j] * c)

        by_kind = {k: scaled(k) for k in WEIGHTS}
        return {name: by_kind[parse_param(name)[0]] for name in param_names(self.layers)}

    def second_order(self, steps: int, lr: float) -> dict[str, Tensor]:
        """:meth:`second_order_rows` formed: W_O and V through their η³ terms, W and P the §3 terms."""
        Vn = self.basis.B_bar.shape[0]
        return {k: p(0, Vn) if callable(p) else p for k, p in self.second_order_rows(steps, lr).items()}

    def predict(self, steps: int, lr: float, order: int = 1) -> dict[str, Tensor]:
        """Order 1: :meth:`closed_form`; order 2: :meth:`second_order`."""
        if order not in (1, 2):
            raise LeadingTermsError(f"order must be 1 or 2, got {order}")
        return self.closed_form(steps, lr) if order == 1 else self.second_order(steps, lr)


def closed_form(basis: BasisLike, steps: int, lr: float, layers: int) -> dict[str, Tensor]:
    """Leading terms after ``steps`` steps of full-batch GD from zero, every layer (docs/theory.md (3.1)–(3.4)):

        W_O = s η B̄                 (V, V) row = current token, col = next token
        V   = C(s,2) η² Φ̄ᵀB̄ᵀ        (V, V) row = context token, col = residual direction
        W   = c(s) η⁴ Q̄              (V, V) row = query token, col = key token
        P   = c(s) η⁴ Δ              (T,)   offset m = t − j

    (coefficient and direction of each kind: :data:`leadingterms.theory.WEIGHTS`). For many (s, η)
    of one basis use :class:`Predictions`, which forms the directions once.
    """
    check_schedule(steps, lr, layers)
    return Predictions(basis, layers).closed_form(steps, lr)


def _row_centred_square(Z: Tensor) -> Tensor:
    """H(Z) = Z∘Z − rowmean(Z∘Z) (docs/theory.md (4.1)), same shape as Z."""
    sq = Z * Z
    return sq - sq.mean(dim=1, keepdim=True)


def predict(basis: BasisLike, steps: int, lr: float, layers: int, order: int = 1) -> dict[str, Tensor]:
    """Order 1: :func:`closed_form`. Order 2: W_O and V through their next Taylor terms (§4);
    W and P keep their §3 leading terms."""
    check_schedule(steps, lr, layers)
    return Predictions(basis, layers).predict(steps, lr, order)


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


def basis_on(basis: Basis, device: torch.device | str) -> Basis:
    """``basis`` with its tensors on ``device`` (a new object; the sparse bigram counts it keeps for its
    products stay on the CPU). The same object when it is already there."""
    import dataclasses

    device = torch.device(device)
    names = ("B_bar", "Phi_bar", "Q_bar", "Delta", "Pi", "A_bar")
    if all(getattr(basis, n).device == device for n in names):
        return basis
    moved = dataclasses.replace(basis, **{n: getattr(basis, n).to(device) for n in names})
    moved.meta = dict(basis.meta)
    if "counts" in basis._cache:
        moved._cache["counts"] = basis._cache["counts"]
    return moved



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
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto", check=device_spec)
    force: bool = option(False, help="replace FILE when it holds other predictions (or is not a prediction file)")


@dataclass
class PredictResult:
    """The file written and its metadata (steps, lr, layers, order, corpus_hash, bounds, norms)."""

    path: Path
    meta: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def run_predict(cfg: PredictConfig) -> PredictResult:
    """Load the basis, write the predicted weights (safetensors + JSON metadata) to ``cfg.out``."""
    from leadingterms.basis import load_basis
    from leadingterms.basis.io import META_FILE, TENSORS_FILE
    from leadingterms.locks import output_lock
    from leadingterms.persist import folder_of, save_tensors

    check_config(cfg)
    out = out_file(cfg.out, ".safetensors")
    device = resolve_device(cfg.device)
    basis = load_basis(cfg.stats)
    if out.resolve() == (folder_of(cfg.stats, (TENSORS_FILE, META_FILE)) / TENSORS_FILE).resolve():
        raise LeadingTermsError(f"--out {out} is the basis it is computed from; choose another file")
    inputs = {"steps": int(cfg.steps), "lr": float(cfg.lr), "layers": int(cfg.layers), "order": int(cfg.order),
              "corpus_hash": basis.meta.get("corpus_hash"), "basis_hash": basis.meta.get("basis_hash")}
    claim = lambda: _refuse_other_prediction(out, inputs, cfg.force)  # noqa: E731
    claim()  # again once the lock is held
    check_predict_budget(out, basis.V, basis.T, cfg.layers, cfg.order, basis.B_bar.dtype.itemsize, device)
    basis = basis_on(basis, device)
    try:
        pred = predict(basis, cfg.steps, cfg.lr, cfg.layers, cfg.order)
        norms = {k: float(torch.linalg.vector_norm(v.to(torch.float64))) for k, v in pred.items()}
        bad = next((k for k, v in pred.items() if not (math.isfinite(norms[k]) and bool(torch.isfinite(v).all()))),
                   None)
    except OverflowError:
        bad = "W_O"
    if bad is not None:
        raise LeadingTermsError(
            f"the predicted {bad} overflows at s={cfg.steps}, eta={cfg.lr:g} (s*eta = {cfg.steps * cfg.lr:.3g}): "
            "the leading terms hold for small s*eta (docs/theory.md §3.5); lower --steps or --lr")
    meta = {
        "kind": "leadingterms.predict",
        "steps": int(cfg.steps),
        "lr": float(cfg.lr),
        "layers": int(cfg.layers),
        "order": int(cfg.order),
        "corpus_hash": basis.meta.get("corpus_hash"),
        "basis_hash": basis.meta.get("basis_hash"),
        "V": int(basis.V),
        "T": int(basis.T),
        "bounds": paper_bounds(cfg.steps, cfg.lr, basis.T),
        "bounds_note": LOOSE_BOUNDS_NOTE,
        "norms": norms,
    }
    # layers share tensors in memory; safetensors refuses shared storage, so clone per layer
    with output_lock(out, folder=False, what="prediction file", claim=claim):
        save_tensors(out, {k: v.clone() for k, v in pred.items()}, metadata=meta)
    return PredictResult(out, meta, [LOOSE_BOUNDS_NOTE])


def predict_bytes(V: int, T: int, layers: int, order: int, itemsize: int) -> tuple[int, int]:
    """(memory, disk) of ``predict``: the directions (3 (V, V), 4 more for order 2), the per-layer copies
    written (2L+1 (V, V)) and their serialisation (as much again); the file holds the 2L+1 (V, V) and L (T,)."""
    file = itemsize * ((2 * layers + 1) * V * V + layers * T)
    return itemsize * V * V * (3 + (4 if order == 2 else 0)) + 2 * file, file


def check_predict_budget(out: Path, V: int, T: int, layers: int, order: int, itemsize: int,
                         device: torch.device | str) -> None:
    """Refuse (one line) before allocating when the L×V² outputs would not fit in memory or on disk."""
    from leadingterms.budget import check_disk, check_memory

    mem, disk = predict_bytes(V, T, layers, order, itemsize)
    hint = "lower --layers (every layer's W and V are (V, V)) or use a smaller vocabulary (stats --top-k)"
    check_memory(mem, f"predicting {layers} layers at V={V}", hint=hint)
    check_disk(out.parent, disk, f"the {layers}-layer prediction file", hint=hint)


def _refuse_other_prediction(out: Path, inputs: dict[str, Any], force: bool) -> None:
    """One overwrite policy: an existing FILE is replaced only when it holds a prediction of the same inputs,
    or with ``force``."""
    if force or not out.exists():
        return
    try:
        from safetensors import safe_open

        with safe_open(str(out), framework="pt") as f:  # type: ignore[no-untyped-call]
            old = json.loads((f.metadata() or {}).get("json", "{}"))
    except Exception:  # noqa: BLE001 - anything unreadable is "not a prediction file"
        old = None
    if not isinstance(old, dict) or old.get("kind") != "leadingterms.predict":
        raise LeadingTermsError(f"--out {out} exists and is not a prediction file; pass --force to replace it")
    diff = next((k for k, v in inputs.items() if old.get(k) != v), None)
    if diff is not None:
        raise LeadingTermsError(f"--out {out} holds another prediction ({diff} {old.get(diff)!r} there, "
                                f"{inputs[diff]!r} now); pass --force to replace it, or choose another --out")
