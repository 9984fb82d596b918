"""The theory's tables: one record per weight kind and per basis matrix (docs/theory.md §3, §7.3).

Everything that maps a weight to its predicted direction, a parameter name to (kind, layer), or a
readout name to its matrix and index meaning reads from here: the closed forms
(:mod:`leadingterms.predict`), the shadow, tracking, intervention, report comparisons, plots and
association readouts.

The weight table (docs/theory.md §3, equations (3.1)–(3.4)); every layer l = 0..L−1 has the same
leading terms::

    parameter        shape   row            column               direction      coefficient
    W_O              (V, V)  current token  next token           B̄   bigram     s·η            (3.1)
    layers.{l}.V     (V, V)  context token  residual direction   Φ̄ᵀB̄ᵀ value     C(s,2)·η²      (3.2)
    layers.{l}.W     (V, V)  query token    key token            Q̄   attention  c(s)·η⁴        (3.3)
    layers.{l}.P     (T,)    offset m = t − j                    Δ   positional c(s)·η⁴        (3.4)

with c(s) = 3C(s,4) + 2C(s,3) = s(s−1)(s−2)(3s−1)/24 = Σ_{r<s} r·C(r,2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from torch import Tensor


class BasisLike(Protocol):
    """What the predictions read from :class:`leadingterms.basis.Basis` (docs/theory.md §2)."""

    B_bar: Tensor  # (V, V) row = current token, col = next token
    Phi_bar: Tensor  # (V, V) row = next token, col = context token
    Q_bar: Tensor  # (V, V) row = query token, col = key token
    Delta: Tensor  # (T,) Delta[m], offset m = t - j
    Pi: Tensor  # (V,) pi_a = frequency of a as current token
    A_bar: Tensor  # (V, V) row = context token, col = query token
    T: int
    V: int

    def value_direction(self) -> Tensor: ...  # Φ̄ᵀB̄ᵀ (V, V)

    def interchange_prev(self) -> Tensor: ...  # B̄B̄ᵀ (V, V)

    def G_bar(self) -> Tensor: ...  # Φ̄ᵀB̄ᵀB̄ (V, V)


# ----------------------------------------------------------------------------- coefficients


def c_s(s: int) -> int:
    """c(s) = 3C(s,4) + 2C(s,3) = s(s−1)(s−2)(3s−1)/24 = Σ_{r<s} r·C(r,2) (docs/theory.md (3.5))."""
    return 3 * math.comb(s, 4) + 2 * math.comb(s, 3)


def S2(s: int) -> int:
    """S₂(s) = Σ_{r<s} r² = 2C(s,3) + C(s,2) (docs/theory.md (4.2))."""
    return 2 * math.comb(s, 3) + math.comb(s, 2)


# ----------------------------------------------------------------------------- basis matrices


@dataclass(frozen=True)
class BasisMatrix:
    """A corpus matrix of docs/theory.md §2 and how its rows and columns read (§7.3)."""

    name: str  # readout name used by the CLI and the API ("bigram", ...)
    symbol: str  # "B̄", "Φ̄ᵀB̄ᵀ", ...
    rows: str  # meaning of the row index
    cols: str  # meaning of the column index
    equation: str  # where docs/theory.md defines it
    #: the product of stored basis tensors that is the matrix, left to right ("B_bar.T" = B̄ᵀ); a
    #: readout computes one row or column from it without forming the product (docs/theory.md §7.3)
    factors: tuple[str, ...] = ()


#: The readout matrices, in the order the CLI lists them (docs/theory.md §7.3).
MATRICES: dict[str, BasisMatrix] = {m.name: m for m in (
    BasisMatrix("bigram", "B̄", "current token", "next token", "(2.2)", ("B_bar",)),
    BasisMatrix("context", "Φ̄", "next token", "context token", "(2.5)", ("Phi_bar",)),
    BasisMatrix("value", "Φ̄ᵀB̄ᵀ", "context token", "residual direction", "(2.10)", ("Phi_bar.T", "B_bar.T")),
    BasisMatrix("attention", "Q̄", "query token", "key token", "(2.15)", ("Q_bar",)),
    BasisMatrix("interchange-next", "B̄ᵀB̄", "next token", "next token", "(2.7)", ("B_bar.T", "B_bar")),
    BasisMatrix("interchange-prev", "B̄B̄ᵀ", "current token", "current token", "(2.8)", ("B_bar", "B_bar.T")),
    BasisMatrix("composition", "Ḡ", "context token", "next token", "(2.9)", ("Phi_bar.T", "B_bar.T", "B_bar")),
)}
BASIS_NAMES = tuple(MATRICES)


# ----------------------------------------------------------------------------- weight kinds


@dataclass(frozen=True)
class WeightKind:
    """One kind of model weight and its leading term ``coefficient(s)·η^eta_power · direction``."""

    kind: str  # "W_O", "W", "V", "P"
    per_layer: bool  # one per layer (W, V, P) or one per model (W_O)
    symbol: str  # the paper's symbol
    shape: str  # "(V, V)" or "(T,)"
    rows: str  # meaning of the row index (or of the entry index for P)
    cols: str | None  # meaning of the column index (None for the vector P)
    direction: str  # the predicted direction: a MATRICES name, or "positional" (Δ)
    direction_symbol: str  # "B̄", "Φ̄ᵀB̄ᵀ", "Q̄", "Δ"
    eta_power: int  # order of the leading term in η
    coefficient_text: str  # "s", "C(s,2)", "c(s)"
    coefficient: Callable[[int], int]  # s -> the integer coefficient
    equation: str  # docs/theory.md equation label

    def coef(self, steps: int, lr: float) -> float:
        """coefficient(s)·η^eta_power: the scalar multiplying the direction after ``steps`` steps."""
        return float(self.coefficient(int(steps))) * float(lr) ** self.eta_power

    def direction_of(self, basis: BasisLike) -> Tensor:
        """The predicted direction read from ``basis``: (V, V), or (T,) for P."""
        return _DIRECTIONS[self.direction](basis)

    def label(self, layer: int | None) -> str:
        """Human label, e.g. ``W_O`` or ``V^(2)``."""
        return self.kind if layer is None else f"{self.kind}^({layer})"

    def leading_term(self) -> str:
        """The formula of the leading term, e.g. ``C(s,2)·η²·Φ̄ᵀB̄ᵀ``."""
        power = "" if self.eta_power == 1 else str(self.eta_power).translate(str.maketrans("0123456789",
                                                                                        "⁰¹²³⁴⁵⁶⁷⁸⁹"))
        return f"{self.coefficient_text}·η{power}·{self.direction_symbol}"


_DIRECTIONS: dict[str, Callable[[BasisLike], Tensor]] = {
    "bigram": lambda b: b.B_bar,
    "value": lambda b: b.value_direction(),
    "attention": lambda b: b.Q_bar,
    "positional": lambda b: b.Delta,
}

#: The weight table, in the model's parameter order (W_O, then per layer W, V, P).
WEIGHTS: dict[str, WeightKind] = {w.kind: w for w in (
    WeightKind("W_O", False, "W_O", "(V, V)", "current token", "next token", "bigram", "B̄", 1, "s",
               lambda s: s, "(3.1)"),
    WeightKind("W", True, "W^(l)", "(V, V)", "query token", "key token", "attention", "Q̄", 4, "c(s)",
               c_s, "(3.3)"),
    WeightKind("V", True, "V^(l)", "(V, V)", "context token", "residual direction", "value", "Φ̄ᵀB̄ᵀ", 2,
               "C(s,2)", lambda s: math.comb(s, 2), "(3.2)"),
    WeightKind("P", True, "P^(l)", "(T,)", "offset m = t − j", None, "positional", "Δ", 4, "c(s)",
               c_s, "(3.4)"),
)}
LAYER_KINDS = tuple(k for k, w in WEIGHTS.items() if w.per_layer)  # ("W", "V", "P")


# ----------------------------------------------------------------------------- parameter names

_PARAM = re.compile(r"^layers\.(\d+)\.(W|V|P)$")


def param_name(kind: str, layer: int | None = None) -> str:
    """``("W_O", None)`` -> ``"W_O"``; ``("V", 2)`` -> ``"layers.2.V"``."""
    w = WEIGHTS[kind]
    if w.per_layer:
        if layer is None:
            raise ValueError(f"{kind} is a per-layer weight: give its layer")
        return f"layers.{int(layer)}.{kind}"
    return kind


def parse_param(name: str) -> tuple[str, int | None]:
    """``"W_O"`` -> ``("W_O", None)``; ``"layers.2.V"`` -> ``("V", 2)``; anything else: ValueError."""
    if name == "W_O":
        return "W_O", None
    m = _PARAM.match(name)
    if not m:
        raise ValueError(f"not a parameter name: {name!r}")
    return m.group(2), int(m.group(1))


def param_names(layers: int, kinds: Iterable[str] = tuple(WEIGHTS)) -> list[str]:
    """Parameter names in the model's order: W_O, then layers.0.W, layers.0.V, layers.0.P, ..."""
    wanted = set(kinds)
    names = ["W_O"] if "W_O" in wanted else []
    for l in range(layers):
        names += [param_name(k, l) for k in LAYER_KINDS if k in wanted]
    return names


def weight_of(name: str) -> WeightKind:
    """The :class:`WeightKind` of a parameter name."""
    return WEIGHTS[parse_param(name)[0]]


def count_layers(names: Iterable[str]) -> int:
    """Number of layers among parameter names (1 + the largest layer index, 0 without layers)."""
    layers = [parse_param(n)[1] for n in names if n != "W_O"]
    return 1 + max((l for l in layers if l is not None), default=-1)


_Item = TypeVar("_Item")


def layered(by_kind: Mapping[str, _Item], layers: int) -> dict[str, _Item]:
    """Parameter-name dict from one tensor (or row builder) per kind; every layer shares the same object
    (clone before writing several to one safetensors file or mutating them)."""
    return {name: by_kind[parse_param(name)[0]] for name in param_names(layers, by_kind)}


def directions(basis: BasisLike, layers: int) -> dict[str, Tensor]:
    """Parameter name -> its predicted direction (layers share tensors)."""
    return layered({k: w.direction_of(basis) for k, w in WEIGHTS.items()}, layers)


# ----------------------------------------------------------------------------- learned readouts


@dataclass(frozen=True)
class LearnedReadout:
    """A learned matrix of one layer read against the basis matrix its leading term is proportional to."""

    name: str  # "W_O", "V", "V·W_O", "W"
    matrix: str  # MATRICES name of the prediction (its row and column meaning)
    per_layer: bool
    factors: tuple[str, ...]  # weight kinds whose product is the readout, left to right

    def factor_names(self, layer: int | None) -> list[str]:
        """Parameter names of the factors at ``layer`` (``V·W_O`` at 0 -> ``["layers.0.V", "W_O"]``)."""
        return [param_name(k, layer if WEIGHTS[k].per_layer else None) for k in self.factors]

    def label(self, layer: int | None) -> str:
        """``W_O``, ``V^(l)``, ``V^(l)·W_O``, ``W^(l)``."""
        if not self.per_layer or layer is None:
            return self.name
        head, _, tail = self.name.partition("·")
        return f"{head}^({layer})" + (f"·{tail}" if tail else "")

    def learned(self, weights: Mapping[str, Tensor], layer: int | None) -> Tensor:
        """The learned (V, V) matrix in float64 on the CPU."""
        import torch

        out: Tensor | None = None
        for name in self.factor_names(layer):
            F = weights[name].detach().to("cpu", torch.float64)
            out = F if out is None else out @ F
        assert out is not None
        return out


#: Learned weights and products compared with basis matrices (docs/theory.md §7.3).
LEARNED_READOUTS: dict[str, LearnedReadout] = {r.name: r for r in (
    LearnedReadout("W_O", "bigram", False, ("W_O",)),
    LearnedReadout("V", "value", True, ("V",)),
    LearnedReadout("V·W_O", "composition", True, ("V", "W_O")),
    LearnedReadout("W", "attention", True, ("W",)),
)}
