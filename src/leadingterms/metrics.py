"""Comparison metrics (docs/theory.md §6): Frobenius cosine, relative error, overlap@k.

One zero convention everywhere (docs/theory.md §6.1), all in float64:

- ``frobenius_cosine(A, B) = ⟨A,B⟩_F / (‖A‖_F ‖B‖_F)``, and 0.0 when A or B is exactly zero;
- ``relative_error(learned, predicted) = ‖learned − predicted‖_F / ‖learned‖_F``, None (undefined)
  when ``learned`` is exactly zero, and 1.0 when only the prediction is zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

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


_CHUNK = 1 << 18  # elements per block of :func:`_sums` (2 MiB of float64: stays in cache)


def _sums(a: Tensor, b: Tensor) -> tuple[float, float, float, float]:
    """(‖a‖², ‖b‖², ⟨a,b⟩, ‖a − b‖²) in float64, in one pass over blocks of the flattened tensors."""
    a, b = a.detach().reshape(-1), b.detach().to(a.device).reshape(-1)
    acc = torch.zeros(4, dtype=torch.float64, device=a.device)
    for i in range(0, a.numel(), _CHUNK):
        x, y = a[i:i + _CHUNK].to(torch.float64), b[i:i + _CHUNK].to(torch.float64)
        d = x - y
        acc += torch.stack([x @ x, y @ y, x @ y, d @ d])
    aa, bb, ab, dd = acc.tolist()
    return aa, bb, ab, dd


def compare(learned: Mapping[str, Tensor], predicted: Mapping[str, Tensor]) -> dict[str, dict[str, float]]:
    """Per parameter name present in both: ``{"cos": frobenius_cosine, "rel": relative_error}``.

    Names whose learned weight is exactly zero are omitted (their relative error is undefined).
    Both numbers come from one float64 pass over the pair (no float64 copy of a whole matrix).
    """
    out: dict[str, dict[str, float]] = {}
    for name, a in learned.items():
        if name not in predicted:
            continue
        b = predicted[name]
        if a.shape != b.shape:
            if not bool(a.any()):
                continue
            raise LeadingTermsError(f"cosine of tensors of different shapes {tuple(a.shape)} and {tuple(b.shape)}")
        aa, bb, ab, dd = _sums(a, b)
        if aa == 0.0:
            continue
        na, nb = math.sqrt(aa), math.sqrt(bb)
        out[name] = {"cos": ab / (na * nb) if nb > 0.0 else 0.0, "rel": math.sqrt(dd) / na}
    return out


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
