"""Association readouts (docs/theory.md §7.3): the top-k tokens of a row or column of a basis matrix or
a learned weight, as strings — e.g. the bigram row of "bird" puts "flew" near the top.

The readout names, their matrices and index meaning are :data:`leadingterms.theory.MATRICES`
(bigram B̄, context Φ̄, value Φ̄ᵀB̄ᵀ, attention Q̄, interchange-next B̄ᵀB̄, interchange-prev B̄B̄ᵀ,
composition Ḡ = Φ̄ᵀB̄ᵀB̄). Derived matrices are never formed: only the requested row or column is
computed (e.g. row c of Φ̄ᵀB̄ᵀ is B̄ Φ̄[:, c]), O(nnz·V) instead of O(V³).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from leadingterms.config import check_config, option
from leadingterms.errors import LeadingTermsError
from leadingterms.theory import BASIS_NAMES, MATRICES
from leadingterms.validate import positive_int


class _Basis(Protocol):
    B_bar: Tensor  # (V, V) current -> next
    Phi_bar: Tensor  # (V, V) next x context
    Q_bar: Tensor  # (V, V) query x key


def basis_vector(basis: _Basis, name: str, index: int, column: bool = False) -> Tensor:
    """Row (or column) ``index`` of the basis matrix ``name`` (V,), computing only that vector."""
    B, Phi = basis.B_bar, basis.Phi_bar

    def row(M: Tensor) -> Tensor:  # row index of M
        return M[index, :]

    def col(M: Tensor) -> Tensor:  # column index of M
        return M[:, index]

    if name == "bigram":
        return col(B) if column else row(B)
    if name == "context":
        return col(Phi) if column else row(Phi)
    if name == "attention":
        return col(basis.Q_bar) if column else row(basis.Q_bar)
    if name == "value":  # Φ̄ᵀB̄ᵀ: row c = B̄ Φ̄[:, c]; column b = Φ̄ᵀ B̄[b, :]
        return Phi.T @ row(B) if column else B @ col(Phi)
    if name == "interchange-next":  # B̄ᵀB̄ (symmetric): row a = B̄ᵀ B̄[:, a]
        return B.T @ col(B)
    if name == "interchange-prev":  # B̄B̄ᵀ (symmetric): row a = B̄ B̄[a, :]
        return B @ row(B)
    if name == "composition":  # Ḡ = Φ̄ᵀB̄ᵀB̄: row c = B̄ᵀ(B̄ Φ̄[:, c]); column b = Φ̄ᵀ(B̄ᵀ B̄[:, b])
        return Phi.T @ (B.T @ col(B)) if column else B.T @ (B @ col(Phi))
    raise LeadingTermsError(f"unknown basis {name!r}; choose one of {', '.join(BASIS_NAMES)}")


def token_index(vocab: Sequence[str], token: str) -> int:
    """Id of ``token`` in ``vocab``; unknown -> one-line error suggesting close matches."""
    try:
        return list(vocab).index(token)
    except ValueError:
        pass
    close = difflib.get_close_matches(token, list(vocab), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; it is not in the vocabulary"
    raise LeadingTermsError(f"unknown token {token!r}{hint}")


def top_of_vector(vec: Tensor, vocab: Sequence[str], k: int = 10,
                  exclude: int | None = None) -> list[tuple[str, float]]:
    """The k largest entries of ``vec`` (V,) as (token string, value), largest first.

    Ties are broken by the smaller token id (stable). ``exclude`` drops one id (e.g. the token
    itself for the symmetric interchange matrices).
    """
    if k < 1:
        raise LeadingTermsError(f"k must be >= 1, got {k}")
    v = vec.detach().to(torch.float64).cpu().clone()
    if v.ndim != 1 or v.shape[0] != len(vocab):
        raise LeadingTermsError(f"vector of shape {tuple(v.shape)} does not match a vocabulary of {len(vocab)}")
    if exclude is not None:
        v[exclude] = float("-inf")
    order = torch.sort(v, descending=True, stable=True).indices
    n = min(k, v.shape[0] - (1 if exclude is not None else 0))
    return [(vocab[int(i)], float(v[int(i)])) for i in order[:n]]


def top_associations(matrix: Tensor, vocab: Sequence[str], token: str, k: int = 10,
                     column: bool = False) -> list[tuple[str, float]]:
    """Top-k tokens of the row of ``token`` in ``matrix`` (V, V) (its column with ``column``)."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] != len(vocab):
        raise LeadingTermsError(
            f"matrix of shape {tuple(matrix.shape)} does not match a vocabulary of {len(vocab)}"
        )
    i = token_index(vocab, token)
    return top_of_vector(matrix[:, i] if column else matrix[i, :], vocab, k)


def basis_associations(basis: _Basis, vocab: Sequence[str], name: str, token: str, k: int = 10,
                       column: bool = False, exclude_self: bool = False) -> list[tuple[str, float]]:
    """Top-k tokens of the row (or column) of ``token`` in basis matrix ``name``."""
    i = token_index(vocab, token)
    return top_of_vector(basis_vector(basis, name, i, column), vocab, k, exclude=i if exclude_self else None)


def association_table(
    basis: _Basis | None,
    vocab: Sequence[str],
    tokens: Iterable[str],
    *,
    names: Sequence[str] = BASIS_NAMES,
    learned: Mapping[str, Tensor] | None = None,
    k: int = 10,
    directions: Sequence[str] = ("row", "column"),
) -> list[dict[str, Any]]:
    """Tidy table of readouts: one dict per (basis, token, direction, rank) with keys
    ``basis, token, direction, rank, other, value`` (rank 1 = largest value).

    ``names`` are basis names (read from ``basis``); ``learned`` adds matrices by their own
    name (e.g. ``{"W_O": ..., "layers.0.V": ...}``, each (V, V)); both use the same vocab.
    """
    for d in directions:
        if d not in ("row", "column"):
            raise LeadingTermsError(f"direction must be 'row' or 'column', got {d!r}")
    toks = list(tokens)
    ids = [token_index(vocab, t) for t in toks]
    if names and basis is None:
        raise LeadingTermsError("association_table needs a basis for basis names")
    rows: list[dict[str, Any]] = []

    def emit(name: str, token: str, direction: str, top: list[tuple[str, float]]) -> None:
        for rank, (other, value) in enumerate(top, start=1):
            rows.append(dict(basis=name, token=token, direction=direction, rank=rank, other=other, value=value))

    for name in names:
        for tok, i in zip(toks, ids, strict=True):
            for d in directions:
                emit(name, tok, d, top_of_vector(basis_vector(basis, name, i, d == "column"), vocab, k))  # type: ignore[arg-type]
    for name, M in (learned or {}).items():
        for tok in toks:
            for d in directions:
                emit(name, tok, d, top_associations(M, vocab, tok, k, column=d == "column"))
    return rows


# ----------------------------------------------------------------------------- the associations stage


@dataclass(kw_only=True)
class AssociationsConfig:
    """``leadingterms associations``: top-k tokens of one row/column of a basis matrix."""

    token: str = option(help="a token string of the vocabulary", metavar="TOKEN", positional=True)
    stats: str = option(help="basis folder from `leadingterms stats`", metavar="DIR")
    basis: str = option("bigram", choices=BASIS_NAMES,
                        help="which matrix: " + ", ".join(f"{n}={m.symbol}" for n, m in MATRICES.items()))
    k: int = option(10, help="how many tokens", check=positive_int)
    column: bool = option(False, help="read the column of TOKEN instead of its row")
    exclude_self: bool = option(False, help="leave TOKEN itself out of the list")


@dataclass
class AssociationsResult:
    """A header line and the top-k (token, value) pairs, largest first."""

    header: str
    top: list[tuple[str, float]]
    notes: list[str] = field(default_factory=list)


def run_associations(cfg: AssociationsConfig) -> AssociationsResult:
    """Load the basis in ``cfg.stats`` and read one row or column."""
    from leadingterms.basis import load_basis

    check_config(cfg)
    basis = load_basis(cfg.stats)
    vocab = basis.vocab
    if vocab is None:
        raise LeadingTermsError(f"the basis in {cfg.stats} has no vocabulary; rebuild it with "
                                "`leadingterms stats`")
    top = basis_associations(basis, vocab, cfg.basis, cfg.token, cfg.k, cfg.column, cfg.exclude_self)
    m = MATRICES[cfg.basis]
    if cfg.column:
        header = f"{cfg.basis}: column of {cfg.token!r} ({m.cols}); top {len(top)} {m.rows}s"
    else:
        header = f"{cfg.basis}: row of {cfg.token!r} ({m.rows}); top {len(top)} {m.cols}s"
    return AssociationsResult(header, top)
