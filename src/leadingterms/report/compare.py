"""Learned vs predicted associations, and the recovery of planted associations.

Comparisons (each (V, V); the learned weight against the matrix its leading term is
proportional to, SPEC §3):

==============  ============  =====================  ======================
learned         predicted     row index              column index
==============  ============  =====================  ======================
W_O             B̄             current token          next token
V^(l)           Φ̄ᵀB̄ᵀ          context token          residual direction
V^(l) W_O       Ḡ = Φ̄ᵀB̄ᵀB̄     context token          next token
W^(l)           Q̄             query token            key token
==============  ============  =====================  ======================

Top-k readouts and overlap@k come from :mod:`leadingterms.associations` (the ``associations``
command's API), so the report and the command read rows the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from leadingterms.associations import overlap_at_k, top_associations, top_of_vector


@dataclass(frozen=True)
class Comparison:
    """One learned weight and the basis matrix it is predicted to be proportional to (both (V, V))."""

    learned_label: str
    predicted_label: str
    learned: Tensor
    predicted: Tensor
    rows: str
    cols: str
    layer: int | None = None


def comparisons(weights: Mapping[str, Tensor], basis: Any, layers: int) -> list[Comparison]:
    """W_O vs B̄; per layer V vs Φ̄ᵀB̄ᵀ, V·W_O vs Ḡ and W vs Q̄ (float64, CPU)."""
    def f64(t: Tensor) -> Tensor:
        return t.detach().to("cpu", torch.float64)

    W_O = f64(weights["W_O"])
    VD, G = f64(basis.value_direction()), f64(basis.G_bar())
    out = [Comparison("W_O", "B̄", W_O, f64(basis.B_bar), "current token", "next token")]
    for l in range(layers):
        Vl = f64(weights[f"layers.{l}.V"])
        out += [
            Comparison(f"V^({l})", "Φ̄ᵀB̄ᵀ", Vl, VD, "context token", "residual direction", l),
            Comparison(f"V^({l})·W_O", "Ḡ", Vl @ W_O, G, "context token", "next token", l),
            Comparison(f"W^({l})", "Q̄", f64(weights[f"layers.{l}.W"]), f64(basis.Q_bar), "query token",
                       "key token", l),
        ]
    return out


def frequent_ids(basis: Any, n: int) -> list[int]:
    """Ids of the ``n`` most frequent current tokens (by π, ties by the smaller id)."""
    order = torch.sort(basis.Pi.detach().cpu().to(torch.float64), descending=True, stable=True).indices
    return [int(i) for i in order[: min(n, len(order))]]


def default_tokens(basis: Any, vocab: Sequence[str], planted: Sequence[Mapping[str, str]] = (),
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
    out = []
    for c in comps:
        na, nb = float(c.learned.norm()), float(c.predicted.norm())
        cos = float((c.learned * c.predicted).sum()) / (na * nb) if na > 0 and nb > 0 else None
        out.append({"learned": c.learned_label, "predicted": c.predicted_label, "layer": c.layer,
                    "k": k, "overlap": overlap_at_k(c.learned, c.predicted, k, rows=list(rows)), "cos": cos})
    return out


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


def _readout_vectors(basis: Any, weights: Mapping[str, Tensor] | None) -> dict[str, Callable[[int], Tensor]]:
    """Readout id -> (token id -> the (V,) vector whose top-k is checked)."""
    pi = basis.Pi.detach().cpu().to(torch.float64)
    Phi = basis.Phi_bar.detach().cpu().to(torch.float64)
    lift = torch.where(pi > 0, 1.0 / pi.clamp_min(1e-300), torch.zeros_like(pi))
    G = basis.G_bar().detach().cpu().to(torch.float64)
    Q, B = basis.Q_bar.detach().cpu(), basis.B_bar.detach().cpu()
    out: dict[str, Callable[[int], Tensor]] = {
        "B̄": lambda i: B[i],
        "Q̄": lambda i: Q[i],
        "Φ̄/π": lambda i: torch.where(pi > 0, Phi[:, i] * lift, torch.full_like(pi, -torch.inf)),
        "Ḡ": lambda i: G[i],
    }
    if weights is not None:
        W_O = weights["W_O"].detach().cpu().to(torch.float64)
        V0 = weights["layers.0.V"].detach().cpu().to(torch.float64)
        W0 = weights["layers.0.W"].detach().cpu()
        out["W_O"] = lambda i: W_O[i]
        out["W^(0)"] = lambda i: W0[i]
        out["V^(0)·W_O"] = lambda i: V0[i] @ W_O
    return out


def planted_recovery(basis: Any, vocab: Sequence[str], planted: Sequence[Mapping[str, str]], *,
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
