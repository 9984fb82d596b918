"""Analyses of a trained checkpoint against the basis: learned vs predicted readouts and the recovery of
planted associations (docs/theory.md §7.3). Computed once; the report and the demo consume them.

Comparisons (:data:`leadingterms.theory.LEARNED_READOUTS`, each (V, V), the learned matrix against the
basis matrix its leading term is proportional to): W_O ~ B̄, V^(l) ~ Φ̄ᵀB̄ᵀ, V^(l)·W_O ~ Ḡ, W^(l) ~ Q̄.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from leadingterms.associations import basis_vector, top_associations, top_of_vector
from leadingterms.basis import Basis
from leadingterms.metrics import frobenius_cosine, overlap_at_k
from leadingterms.theory import LEARNED_READOUTS, MATRICES, count_layers


@dataclass(frozen=True)
class Comparison:
    """One learned matrix and the basis matrix it is predicted to be proportional to (both (V, V), float64)."""

    learned_label: str
    predicted_label: str
    learned: Tensor
    predicted: Tensor
    rows: str
    cols: str
    layer: int | None = None


def _matrix(basis: Basis, name: str) -> Tensor:
    """The full (V, V) basis matrix ``name`` in float64 on the CPU (derived ones formed once)."""
    full = {"bigram": lambda: basis.B_bar, "value": basis.value_direction, "composition": basis.G_bar,
            "attention": lambda: basis.Q_bar}[name]()
    return full.detach().to("cpu", torch.float64)


def comparisons(weights: Mapping[str, Tensor], basis: Basis, layers: int) -> list[Comparison]:
    """Every learned readout of every layer against its prediction, in table order per layer."""
    cache: dict[str, Tensor] = {}
    out = []
    for readout in LEARNED_READOUTS.values():
        for layer in (range(layers) if readout.per_layer else [None]):
            m = MATRICES[readout.matrix]
            if readout.matrix not in cache:
                cache[readout.matrix] = _matrix(basis, readout.matrix)
            out.append(Comparison(readout.label(layer), m.symbol, readout.learned(weights, layer),
                                  cache[readout.matrix], m.rows, m.cols, layer))
    return sorted(out, key=lambda c: -1 if c.layer is None else c.layer)


def frequent_ids(basis: Basis, n: int) -> list[int]:
    """Ids of the ``n`` most frequent current tokens (by π, ties by the smaller id)."""
    order = torch.sort(basis.Pi.detach().cpu().to(torch.float64), descending=True, stable=True).indices
    return [int(i) for i in order[: min(n, len(order))]]


def default_tokens(basis: Basis, vocab: Sequence[str], planted: Sequence[Mapping[str, str]] = (),
                   n_frequent: int = 3, n_planted: int = 5) -> list[str]:
    """The ``n_frequent`` most frequent tokens, then up to ``n_planted`` planted subjects (``a`` of
    the planted pairs, alternating kinds so both bigram and context subjects appear)."""
    out = [vocab[i] for i in frequent_ids(basis, n_frequent)]
    by_kind: dict[str, list[str]] = {}
    for p in planted:
        if p.get("a") in vocab and p["a"] not in by_kind.setdefault(p["kind"], []):
            by_kind[p["kind"]].append(p["a"])
    queues = list(by_kind.values())
    added = 0
    while added < n_planted and any(queues):
        for q in queues:
            while q and q[0] in out:
                q.pop(0)
            if q and added < n_planted:
                out.append(q.pop(0))
                added += 1
    return out


def overlap_summary(comps: Sequence[Comparison], rows: Sequence[int], k: int) -> list[dict[str, Any]]:
    """Per comparison: overlap@k between learned and predicted rows (mean over ``rows``) and the
    Frobenius cosine of the two matrices."""
    return [{"learned": c.learned_label, "predicted": c.predicted_label, "layer": c.layer, "k": k,
             "overlap": overlap_at_k(c.learned, c.predicted, k, rows=list(rows)),
             "cos": frobenius_cosine(c.learned, c.predicted)} for c in comps]


def side_by_side(comp: Comparison, vocab: Sequence[str], tokens: Sequence[str], k: int) -> list[dict[str, Any]]:
    """Per token: the top-k of its row in the learned and in the predicted matrix, and how many agree."""
    out = []
    for tok in tokens:
        learned = top_associations(comp.learned, vocab, tok, k)
        predicted = top_associations(comp.predicted, vocab, tok, k)
        common = {t for t, _ in learned} & {t for t, _ in predicted}
        out.append({"token": tok, "learned": learned, "predicted": predicted, "common": len(common)})
    return out


# ----------------------------------------------------------------------------- planted associations

@dataclass(frozen=True)
class PlantedReadout:
    """One way of looking for a planted pair (a, b) in a top-k list (docs/theory.md §7.3).

    ``source``: a basis matrix (``MATRICES`` name, or ``context/π``: Φ̄ with each row b divided by π_b)
    or, with ``learned``, a :data:`leadingterms.theory.LEARNED_READOUTS` name read for every layer it has.
    ``reverse``: look for a in row b (the follower b, as query, attends back to a) instead of b in row a.
    """

    kind: str  # planted kind: "bigram" or "context"
    source: str
    learned: bool
    reverse: bool
    description: str  # "top-k" becomes "top-5"; "(l)" becomes the layer

    def label(self, layer: int | None) -> str:
        """"B̄", "Φ̄/π", "W_O", "W^(2)", "V^(1)·W_O" ..."""
        if self.learned:
            return LEARNED_READOUTS[self.source].label(layer)
        return "Φ̄/π" if self.source == "context/π" else MATRICES[self.source].symbol

    def layers(self, n_layers: int) -> list[int | None]:
        """The layers this readout is read at: every layer for a per-layer learned readout, else [None]."""
        per_layer = self.learned and LEARNED_READOUTS[self.source].per_layer
        return list(range(n_layers)) if per_layer else [None]


#: How each planted kind is read out, in reporting order.
PLANTED_READOUTS: tuple[PlantedReadout, ...] = (
    PlantedReadout("bigram", "bigram", False, False, "b in the top-k of row a of B̄ (next tokens after a)"),
    PlantedReadout("bigram", "W_O", True, False, "b in the top-k of row a of the learned W_O"),
    PlantedReadout("bigram", "attention", False, True, "a in the top-k of row b of Q̄ (query b attends to key a)"),
    PlantedReadout("bigram", "W", True, True, "a in the top-k of row b of the learned W^(l)"),
    PlantedReadout("context", "context/π", False, False, "b in the top-k of column a of Φ̄ with each row b "
                   "divided by π_b (next tokens after context a, relative to their frequency)"),
    PlantedReadout("context", "composition", False, False, "b in the top-k of row a of Ḡ = Φ̄ᵀB̄ᵀB̄ (context a "
                   "-> next token through value and output)"),
    PlantedReadout("context", "V·W_O", True, False, "b in the top-k of row a of the learned V^(l)·W_O"),
)


def _readout_vector(r: PlantedReadout, basis: Basis, weights: Mapping[str, Tensor] | None,
                    layer: int | None) -> Callable[[int], Tensor]:
    """token id -> the (V,) vector whose top-k the readout checks."""
    if r.learned:
        assert weights is not None
        return LEARNED_READOUTS[r.source].learned(weights, layer).__getitem__
    if r.source == "context/π":
        pi = basis.Pi.detach().cpu().to(torch.float64)
        Phi = basis.Phi_bar.detach().cpu().to(torch.float64)
        lift = torch.where(pi > 0, 1.0 / pi.clamp_min(1e-300), torch.zeros_like(pi))
        return lambda i: torch.where(pi > 0, Phi[:, i] * lift, torch.full_like(pi, -torch.inf))
    return lambda i: basis_vector(basis, r.source, i)


def planted_recovery(basis: Basis, vocab: Sequence[str], planted: Sequence[Mapping[str, str]], *,
                     weights: Mapping[str, Tensor] | None = None, k: int = 5) -> list[dict[str, Any]]:
    """How many planted pairs each readout of :data:`PLANTED_READOUTS` finds in its top-k, for every layer.

    -> one dict per (kind, readout, layer): ``kind, readout`` (label, e.g. ``W^(1)``), ``source``,
    ``layer`` (None for a basis matrix or W_O), ``description``, ``hits``, ``total`` (pairs whose tokens
    are both in the vocabulary), ``n_planted``, ``missed`` (list of "a→b"). Readouts of learned
    weights are skipped when ``weights`` is None; their layers are those of ``weights``.
    """
    index = {t: i for i, t in enumerate(vocab)}
    n_layers = count_layers(weights) if weights is not None else 0
    rows = []
    for r in PLANTED_READOUTS:
        if (r.learned and weights is None) or not any(p.get("kind") == r.kind for p in planted):
            continue
        pairs = [(p["a"], p["b"]) for p in planted
                 if p.get("kind") == r.kind and p["a"] in index and p["b"] in index]
        for layer in r.layers(n_layers):
            vector = _readout_vector(r, basis, weights, layer)
            missed = []
            for a, b in pairs:
                src, dst = (b, a) if r.reverse else (a, b)
                top = {t for t, _ in top_of_vector(vector(index[src]), vocab, k)}
                if dst not in top:
                    missed.append(f"{a}→{b}")
            desc = r.description.replace("top-k", f"top-{k}")
            rows.append({"kind": r.kind, "readout": r.label(layer), "source": r.source, "layer": layer,
                         "description": desc if layer is None else desc.replace("(l)", f"({layer})"),
                         "hits": len(pairs) - len(missed), "total": len(pairs),
                         "n_planted": sum(1 for p in planted if p.get("kind") == r.kind), "missed": missed})
    return rows


def readout_key(row: Mapping[str, Any]) -> str:
    """The readout of a planted or overlap row with its layer as l: "W^(2)" -> "W^(l)", "B̄" -> "B̄"."""
    label = str(row.get("readout") or row.get("learned"))
    layer = row.get("layer")
    return label if layer is None else label.replace(f"^({layer})", "^(l)")


def per_layer_text(rows: Sequence[Mapping[str, Any]], value: Callable[[Mapping[str, Any]], str]) -> str:
    """Rows of one planted or overlap table -> "B̄ 16/16, W_O 9/16, W^(l) 0/16·10/16·16/16": readouts read at
    every layer are grouped, their values listed by layer (l = 0, 1, ...)."""
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(readout_key(r), []).append(value(r))
    return ", ".join(f"{key} {'·'.join(vals)}" for key, vals in groups.items())
