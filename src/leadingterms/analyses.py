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
from leadingterms.theory import LEARNED_READOUTS, MATRICES


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

#: How each planted kind is read out (k = top-k), as (readout id, description).
PLANTED_READOUTS: dict[str, list[tuple[str, str]]] = {
    "bigram": [
        ("B̄", "b in the top-k of row a of B̄ (next tokens after a)"),
        ("W_O", "b in the top-k of row a of the learned W_O"),
        ("Q̄", "a in the top-k of row b of Q̄ (query b attends to key a)"),
        ("W^(0)", "a in the top-k of row b of the learned W^(0)"),
    ],
    "context": [
        ("Φ̄/π", "b in the top-k of column a of Φ̄ with each row b divided by π_b "
                 "(next tokens after context a, relative to their frequency)"),
        ("Ḡ", "b in the top-k of row a of Ḡ = Φ̄ᵀB̄ᵀB̄ (context a -> next token through value and output)"),
        ("V^(0)·W_O", "b in the top-k of row a of the learned V^(0)·W_O"),
    ],
}


def _readout_vectors(basis: Basis, weights: Mapping[str, Tensor] | None) -> dict[str, Callable[[int], Tensor]]:
    """Readout id -> (token id -> the (V,) vector whose top-k is checked)."""
    pi = basis.Pi.detach().cpu().to(torch.float64)
    Phi = basis.Phi_bar.detach().cpu().to(torch.float64)
    lift = torch.where(pi > 0, 1.0 / pi.clamp_min(1e-300), torch.zeros_like(pi))
    out: dict[str, Callable[[int], Tensor]] = {
        "B̄": lambda i: basis_vector(basis, "bigram", i),
        "Q̄": lambda i: basis_vector(basis, "attention", i),
        "Φ̄/π": lambda i: torch.where(pi > 0, Phi[:, i] * lift, torch.full_like(pi, -torch.inf)),
        "Ḡ": lambda i: basis_vector(basis, "composition", i),
    }
    if weights is not None:
        readouts = {"W_O": ("W_O", None), "W^(0)": ("W", 0), "V^(0)·W_O": ("V·W_O", 0)}
        for rid, (name, layer) in readouts.items():
            out[rid] = LEARNED_READOUTS[name].learned(weights, layer).__getitem__
    return out


def planted_recovery(basis: Basis, vocab: Sequence[str], planted: Sequence[Mapping[str, str]], *,
                     weights: Mapping[str, Tensor] | None = None, k: int = 5) -> list[dict[str, Any]]:
    """How many planted pairs each readout of :data:`PLANTED_READOUTS` finds in its top-k.

    -> one dict per (kind, readout): ``kind, readout, description, hits, total`` (pairs whose
    tokens are both in the vocabulary), ``missed`` (list of "a→b"). Readouts of learned weights
    are skipped when ``weights`` is None.
    """
    index = {t: i for i, t in enumerate(vocab)}
    vectors = _readout_vectors(basis, weights)
    rows = []
    for kind, readouts in PLANTED_READOUTS.items():
        pairs = [(p["a"], p["b"]) for p in planted
                 if p.get("kind") == kind and p["a"] in index and p["b"] in index]
        if not any(p.get("kind") == kind for p in planted):
            continue
        for rid, desc in readouts:
            if rid not in vectors:
                continue
            missed = []
            for a, b in pairs:
                # bigram attention readouts look from the follower b back to a; the others from a to b
                src, dst = (b, a) if rid in ("Q̄", "W^(0)") else (a, b)
                top = {t for t, _ in top_of_vector(vectors[rid](index[src]), vocab, k)}
                if dst not in top:
                    missed.append(f"{a}→{b}")
            rows.append({"kind": kind, "readout": rid, "description": desc.replace("top-k", f"top-{k}"),
                         "hits": len(pairs) - len(missed), "total": len(pairs),
                         "n_planted": sum(1 for p in planted if p.get("kind") == kind), "missed": missed})
    return rows
