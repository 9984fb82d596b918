"""Comparison metrics (docs/theory.md §6): Frobenius cosine, relative error, overlap@k.

One zero convention everywhere (docs/theory.md §6.1), all in float64:

- ``frobenius_cosine(A, B) = ⟨A,B⟩_F / (‖A‖_F ‖B‖_F)``, and 0.0 when A or B is exactly zero;
- ``relative_error(learned, predicted) = ‖learned − predicted‖_F / ‖learned‖_F``, None (undefined)
  when ``learned`` is exactly zero, and 1.0 when only the prediction is zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from leadingterms.errors import LeadingTermsError


def _f64(t: Tensor, like: Tensor | None = None) -> Tensor:
    return t.detach().to(device=like.device if like is not None else t.device, dtype=torch.float64)


def frobenius_cosine(A: Tensor, B: Tensor) -> float:
    """⟨A,B⟩_F / (‖A‖_F ‖B‖_F) of two same-shape tensors in float64; 0.0 when either is zero."""
    if A.shape != B.shape:
        raise LeadingTermsError(f"cosine of tensors of different shapes {tuple(A.shape)} and {tuple(B.shape)}")
    a = _f64(A).flatten()
    b = _f64(B, a).flatten()
    na, nb = float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(a @ b) / (na * nb)


def relative_error(learned: Tensor, predicted: Tensor) -> float | None:
    """‖learned − predicted‖_F / ‖learned‖_F in float64; None when ``learned`` is exactly zero."""
    a = _f64(learned).flatten()
    b = _f64(predicted, a).flatten()
    na = float(torch.linalg.vector_norm(a))
    if na == 0.0:
        return None
    return float(torch.linalg.vector_norm(a - b)) / na


#: A prediction for :func:`compare_many`: a tensor, or ``rows(i, j)`` giving rows i..j-1 of one
#: (for a prediction that is cheaper to build block by block than to hold, e.g. coef · direction).
Prediction = Tensor | Callable[[int, int], Tensor]

#: Elements per block of rows in :func:`compare_many` (2 MiB of float64: a block, a prediction's rows
#: and their difference stay in cache while the block is compared with every prediction of the same
#: weight; at V = 3001 a log's comparisons took 168-201 ms with 8 MiB blocks, 67-93 ms with these).
BLOCK_ELEMENTS = 1 << 18


def row_blocks(a: Tensor) -> list[tuple[int, int]]:
    """Row ranges [i, j) of ``a`` of about :data:`BLOCK_ELEMENTS` elements each; one range (0, 1) for a
    vector (taken whole)."""
    if a.ndim < 2:
        return [(0, 1)]
    n = a.shape[0]
    per = max(1, BLOCK_ELEMENTS // max(1, a[0].numel()))
    return [(i, min(i + per, n)) for i in range(0, n, per)]


def rows_of(a: Tensor, i: int, j: int) -> Tensor:
    """Rows i..j-1 of a matrix, or the whole of a vector (the blocks of :func:`row_blocks`)."""
    return a[i:j] if a.ndim > 1 else a


def compare_many(learned: Mapping[str, Tensor],
                 predictions: Mapping[str, Mapping[str, Prediction]]) -> dict[str, dict[str, dict[str, float]]]:
    """:func:`compare` of ``learned`` with several sets of predictions (``{kind: {name: prediction}}``)
    -> ``{kind: {name: {"cos", "rel"}}}``.

    Each learned weight is read once, one block of rows at a time, in float64, and compared with
    every prediction of that name while the block is in cache; ‖a‖², ‖b‖² and ‖a − b‖² are
    accumulated in float64 and ⟨a,b⟩ = (‖a‖² + ‖b‖² − ‖a − b‖²)/2 (its rounding, ~1e-16·(‖a‖² + ‖b‖²),
    is far below what a cosine resolves). The zero convention of the module docstring applies.
    """
    out: dict[str, dict[str, dict[str, float]]] = {kind: {} for kind in predictions}
    for name, a in learned.items():
        kinds = [k for k, preds in predictions.items() if name in preds]
        if not kinds:
            continue
        a = a.detach()
        acc = {k: torch.zeros(3, dtype=torch.float64, device=a.device) for k in kinds}
        shape_error: str | None = None
        for i, j in row_blocks(a):
            x = rows_of(a, i, j).to(torch.float64).reshape(-1)
            xx = x @ x
            for k in kinds:
                p = predictions[k][name]
                y = p(i, j) if callable(p) else rows_of(p, i, j)
                if y.numel() != x.numel() or (not callable(p) and p.shape != a.shape):
                    shape_error = f"{tuple(a.shape)} and {tuple(p.shape) if not callable(p) else '?'}"
                    break
                y = y.detach().to(device=a.device, dtype=torch.float64).reshape(-1)
                d = x - y
                acc[k] += torch.stack([xx, y @ y, d @ d])
            if shape_error:
                break
        if shape_error:
            if not bool(a.any()):
                continue
            raise LeadingTermsError(f"cosine of tensors of different shapes {shape_error}")
        for k in kinds:
            aa, bb, dd = acc[k].tolist()
            if aa == 0.0:
                continue  # the relative error is undefined for an exactly zero learned weight
            na, nb = math.sqrt(aa), math.sqrt(bb)
            out[k][name] = {"cos": (aa + bb - dd) / 2 / (na * nb) if nb > 0.0 else 0.0, "rel": math.sqrt(dd) / na}
    return out


def compare(learned: Mapping[str, Tensor], predicted: Mapping[str, Tensor]) -> dict[str, dict[str, float]]:
    """Per parameter name present in both: ``{"cos": frobenius_cosine, "rel": relative_error}``.

    Names whose learned weight is exactly zero are omitted (their relative error is undefined).
    (One set of :func:`compare_many`.)
    """
    return compare_many(learned, {"": predicted})[""]


def top_k_indices(M: Tensor, k: int) -> Tensor:
    """(rows, k) indices of the k largest entries of each row of M, largest first; ties by the smaller index."""
    return torch.sort(_f64(M), dim=-1, descending=True, stable=True).indices[..., :k]


def overlap_at_k(A: Tensor, B: Tensor, k: int = 10, rows: Sequence[int] | None = None,
                 column: bool = False) -> float:
    """Mean over rows (columns with ``column``) of |top-k(A[i]) ∩ top-k(B[i])| / k, in [0, 1]
    (docs/theory.md §6.2).

    A, B: (V, V) (e.g. learned W_O and predicted B̄). ``rows`` restricts to some indices.
    Ties inside the top-k are broken by the smaller index (stable sort), as in the readouts.
    """
    if A.shape != B.shape or A.ndim != 2:
        raise LeadingTermsError(
            f"overlap@k needs two matrices of the same shape, got {tuple(A.shape)}, {tuple(B.shape)}")
    if column:
        A, B = A.T, B.T
    n = A.shape[1]
    if not 1 <= k <= n:
        raise LeadingTermsError(f"k must be between 1 and {n}, got {k}")
    idx = list(range(A.shape[0])) if rows is None else list(rows)
    if not idx:
        raise LeadingTermsError("overlap@k needs at least one row")
    a = _f64(A[idx]).cpu()
    b = _f64(B[idx]).cpu()
    ta, tb = top_k_indices(a, k), top_k_indices(b, k)
    hits = torch.zeros(len(idx), n, dtype=torch.int64)
    hits.scatter_add_(1, ta, torch.ones_like(ta))
    hits.scatter_add_(1, tb, torch.ones_like(tb))
    return float((hits == 2).sum(dim=1).to(torch.float64).mean()) / k
