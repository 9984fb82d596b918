"""Association readouts (docs/theory.md §7.3): the top-k tokens of a row or column of a basis matrix or
a learned weight, as strings — e.g. the bigram row of "bird" puts "flew" near the top.

A readout is a (V, V) matrix Z given as a product of stored factors Z = F₁F₂⋯Fₙ
(:class:`Readout`): the basis matrices of :data:`leadingterms.theory.MATRICES` (bigram B̄, context
Φ̄, value Φ̄ᵀB̄ᵀ, attention Q̄, interchange-next B̄ᵀB̄, interchange-prev B̄B̄ᵀ, composition
Ḡ = Φ̄ᵀB̄ᵀB̄) and the learned weights of :data:`leadingterms.theory.LEARNED_READOUTS` (W_O, V^(l),
V^(l)·W_O, W^(l)). Z is never formed: row f is e_fᵀF₁⋯Fₙ and column f is F₁⋯Fₙe_f, one
matrix-vector product per factor (O(V²) each instead of O(V³)), which on a memory-mapped basis
(:func:`leadingterms.basis.load_basis` with ``mmap=True``) reads only what the product needs.

Normalisations (docs/theory.md (7.4)–(7.7)), for the readout v of token f (v = Z[f,:] or Z[:,f],
indexed by the listed token o): ``none`` v[o]; ``freq`` v[o]/π_o; ``pmi`` v[o]/(π_f·π_o);
``centred`` v minus the mean row (1/V)Σ_f' Z[f',:] (the mean column for a column readout).
Entries with π_o = 0 are undefined under ``freq`` and ``pmi`` and are never listed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor

from leadingterms.basis._tokens import OTHER_TOKEN
from leadingterms.config import check_config, option
from leadingterms.errors import LeadingTermsError
from leadingterms.theory import BASIS_NAMES, LEARNED_READOUTS, MATRICES
from leadingterms.validate import nonnegative_int, positive_int

#: The normalisations of docs/theory.md (7.4)–(7.7), in the order the CLI lists them.
NORMALIZATIONS = ("none", "freq", "pmi", "centred")
DIRECTIONS = ("row", "column")


class _Basis(Protocol):
    B_bar: Tensor  # (V, V) current -> next
    Phi_bar: Tensor  # (V, V) next x context
    Q_bar: Tensor  # (V, V) query x key


# ----------------------------------------------------------------------------- one readout


def _factor(source: Any, spec: str) -> Tensor:
    """``"B_bar"`` -> source.B_bar, ``"B_bar.T"`` -> its transpose (a view); source: object or mapping."""
    transpose = spec.endswith(".T")
    name = spec[:-2] if transpose else spec
    M = source[name] if isinstance(source, Mapping) else getattr(source, name)
    if not isinstance(M, Tensor) or M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise LeadingTermsError(f"readout factor {name} must be a square (V, V) tensor")
    return M.T if transpose else M


@dataclass(eq=False)
class Readout:
    """A (V, V) matrix Z = F₁F₂⋯Fₙ read one row or column at a time, never formed.

    ``name`` (``"bigram"``, ``"V^(0)·W_O"``), ``symbol`` (``"B̄"``), ``rows`` / ``cols``: the meaning of
    Z's row and column index; ``factors``: the (V, V) factors, left to right (views of stored tensors;
    any float dtype, products in that dtype, results in float64).
    """

    name: str
    symbol: str
    rows: str
    cols: str
    factors: tuple[Tensor, ...]
    _means: dict[bool, Tensor] = field(default_factory=dict, repr=False)

    @property
    def V(self) -> int:
        return int(self.factors[0].shape[0])

    def _left(self, X: Tensor) -> Tensor:
        """X F₂⋯Fₙ for X (V,) or (n, V) = rows of F₁ (or a vector in F₁'s row space)."""
        for F in self.factors[1:]:
            X = X.to(F.dtype) @ F
        return X

    def _right(self, X: Tensor) -> Tensor:
        """F₁⋯Fₙ₋₁ X for X (V,) or (V, n) = columns of Fₙ."""
        for F in reversed(self.factors[:-1]):
            X = F @ X.to(F.dtype)
        return X

    def vector(self, index: int, column: bool = False) -> Tensor:
        """Row ``index`` of Z (column ``index`` with ``column``), (V,) float64."""
        if column:
            return self._right(self.factors[-1][:, index]).to(torch.float64)
        return self._left(self.factors[0][index, :]).to(torch.float64)

    def block(self, indices: Sequence[int] | Tensor, column: bool = False) -> Tensor:
        """Rows (or columns) ``indices`` of Z as an (n, V) float64 block (row i = token indices[i])."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        if column:
            return self._right(self.factors[-1][:, idx]).T.to(torch.float64)
        return self._left(self.factors[0][idx, :]).to(torch.float64)

    def mean(self, column: bool = False) -> Tensor:
        """The mean row (1/V)·1ᵀZ (the mean column (1/V)·Z1 with ``column``), (V,) float64, cached."""
        if column not in self._means:
            if column:
                m = self._right(self.factors[-1].sum(1, dtype=torch.float64))
            else:
                m = self._left(self.factors[0].sum(0, dtype=torch.float64))
            self._means[column] = m.to(torch.float64) / self.V
        return self._means[column]


def basis_readout(basis: _Basis, name: str) -> Readout:
    """The basis matrix ``name`` of :data:`MATRICES` as a :class:`Readout` of the basis tensors."""
    if name not in MATRICES:
        raise LeadingTermsError(f"unknown basis {name!r}; choose one of {', '.join(BASIS_NAMES)}")
    m = MATRICES[name]
    return Readout(name, m.symbol, m.rows, m.cols, tuple(_factor(basis, f) for f in m.factors))


def learned_readout(weights: Mapping[str, Tensor], name: str, layer: int | None) -> Readout:
    """The learned readout ``name`` of :data:`LEARNED_READOUTS` (W_O, V, V·W_O, W) of ``layer``."""
    if name not in LEARNED_READOUTS:
        raise LeadingTermsError(f"unknown learned readout {name!r}; choose one of {', '.join(LEARNED_READOUTS)}")
    r = LEARNED_READOUTS[name]
    m = MATRICES[r.matrix]
    names = r.factor_names(layer if r.per_layer else None)
    missing = [n for n in names if n not in weights]
    if missing:
        raise LeadingTermsError(f"the weights lack {', '.join(missing)}")
    return Readout(r.label(layer if r.per_layer else None), r.name, m.rows, m.cols,
                   tuple(_factor(weights, n) for n in names))


def learned_readouts(weights: Mapping[str, Tensor], layers: int, names: Iterable[str] = tuple(LEARNED_READOUTS),
                     only_layer: int | None = None) -> list[Readout]:
    """Every requested learned readout of every layer (or of ``only_layer``), W_O first, then by layer."""
    wanted = list(names)
    if only_layer is not None and not 0 <= only_layer < layers:
        raise LeadingTermsError(f"layer {only_layer} does not exist; the model has layers 0..{layers - 1}")
    out = [learned_readout(weights, n, None) for n in wanted if not LEARNED_READOUTS[n].per_layer]
    for layer in range(layers) if only_layer is None else [only_layer]:
        out += [learned_readout(weights, n, layer) for n in wanted if LEARNED_READOUTS[n].per_layer]
    return out


# ----------------------------------------------------------------------------- normalise and rank


def normalized(values: Tensor, index: int | Tensor, how: str, Pi: Tensor, mean: Tensor | None = None) -> Tensor:
    """Readouts ``values`` ((V,) or (n, V): the row/column of token ``index`` / of each of ``index`` (n,))
    normalised by docs/theory.md (7.4)–(7.7) -> float64, NaN where undefined (π_o = 0).

    ``Pi`` (V,): π (2.3); ``mean`` (V,): the readout's mean row (column) for ``centred``
    (:meth:`Readout.mean`). ``pmi`` of a token f with π_f = 0 is a one-line error.
    """
    if how not in NORMALIZATIONS:
        raise LeadingTermsError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {how!r}")
    v = values.to(torch.float64)
    if how == "none":
        return v
    if how == "centred":
        if mean is None:
            raise LeadingTermsError("centred needs the readout's mean row or column")
        return v - mean.to(torch.float64)
    pi = Pi.detach().to("cpu", torch.float64)
    lift = torch.where(pi > 0, v / pi.clamp_min(torch.finfo(torch.float64).tiny), torch.nan)
    if how == "freq":
        return lift
    pf = pi[torch.as_tensor(index, dtype=torch.long)]
    if bool((pf <= 0).any()):
        raise LeadingTermsError("pmi is undefined for a token with π = 0 (it never occurs as a current token); "
                                "use --normalize freq")
    return lift / (pf[:, None] if lift.ndim == 2 else pf)


def top_k(values: Tensor, k: int, exclude: Tensor | Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    """The k largest entries of each row of ``values`` (n, V) -> (ids (n, k) long, values (n, k) float64),
    largest first, ties by the smaller id; NaN entries and ``exclude`` (one id per row, e.g. the token
    itself) are never listed: their slots (when fewer than k remain) hold id −1 and value NaN."""
    if k < 1:
        raise LeadingTermsError(f"k must be >= 1, got {k}")
    Z = torch.nan_to_num(values.to(torch.float64), nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)
    n, V = Z.shape
    if exclude is not None:
        Z.scatter_(1, torch.as_tensor(exclude, dtype=torch.long).reshape(n, 1), -torch.inf)
    kk = min(k + 1, V)
    vals, ids = torch.topk(Z, kk, dim=1, sorted=True)
    # a row whose top k+1 values are all distinct has one answer; rows with ties are sorted stably
    tied = (vals[:, 1:] == vals[:, :-1]).any(1).nonzero().flatten()
    if len(tied):
        s = torch.sort(Z[tied], dim=1, descending=True, stable=True)
        vals[tied], ids[tied] = s.values[:, :kk], s.indices[:, :kk]
    vals, ids = vals[:, :k], ids[:, :k]
    gone = torch.isneginf(vals)
    return ids.masked_fill(gone, -1), vals.masked_fill(gone, torch.nan)


def token_index(vocab: Sequence[str], token: str) -> int:
    """Id of ``token`` in ``vocab``; unknown -> one-line error suggesting close matches."""
    try:
        return list(vocab).index(token)
    except ValueError:
        pass
    close = difflib.get_close_matches(token, list(vocab), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; it is not in the vocabulary"
    if vocab and vocab[-1] == OTHER_TOKEN:
        hint += (f" (this basis keeps the {len(vocab) - 1} most frequent tokens, `stats --top-k`; the others are "
                 f"{OTHER_TOKEN!r})")
    raise LeadingTermsError(f"unknown token {token!r}{hint}")


def top_of_vector(vec: Tensor, vocab: Sequence[str], k: int = 10,
                  exclude: int | None = None) -> list[tuple[str, float]]:
    """The k largest entries of ``vec`` (V,) as (token string, value), largest first.

    Ties are broken by the smaller token id (stable). NaN entries and ``exclude`` (one id, e.g. the
    token itself for the symmetric interchange matrices) are left out.
    """
    if vec.ndim != 1 or vec.shape[0] != len(vocab):
        raise LeadingTermsError(f"vector of shape {tuple(vec.shape)} does not match a vocabulary of {len(vocab)}")
    ids, vals = top_k(vec.detach().cpu()[None, :], k, None if exclude is None else [exclude])
    return [(vocab[int(i)], float(v)) for i, v in zip(ids[0], vals[0], strict=True) if int(i) >= 0]


def basis_vector(basis: _Basis, name: str, index: int, column: bool = False) -> Tensor:
    """Row (or column) ``index`` of the basis matrix ``name`` (V,), computing only that vector."""
    return basis_readout(basis, name).vector(index, column)


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


# ----------------------------------------------------------------------------- many readouts at once


@dataclass(eq=False)
class Readouts:
    """The readouts of one vocabulary: basis matrices and (optionally) one checkpoint's learned weights.

    ``vocab`` (V token strings), ``Pi`` (V,) π of the basis (2.3), ``readouts`` by name (``"bigram"``,
    ..., ``"W_O"``, ``"V^(0)"``, ``"V^(0)·W_O"``, ``"W^(0)"``); ``step``: the checkpoint of the learned ones.
    """

    vocab: list[str]
    Pi: Tensor
    readouts: dict[str, Readout]
    step: int | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def index(self, token: str) -> int:
        """Id of ``token``; unknown -> one-line error with close matches."""
        if not self._index:
            self._index = {t: i for i, t in enumerate(self.vocab)}
        i = self._index.get(token)
        return token_index(self.vocab, token) if i is None else i

    def get(self, name: str) -> Readout:
        if name not in self.readouts:
            raise LeadingTermsError(f"no readout {name!r}; available: {', '.join(self.readouts)}")
        return self.readouts[name]

    def vector(self, name: str, token: str | int, *, column: bool = False, normalize: str = "none") -> Tensor:
        """The normalised row (column) of ``token`` in readout ``name``, (V,) float64, NaN where undefined."""
        r = self.get(name)
        i = token if isinstance(token, int) else self.index(token)
        mean = r.mean(column) if normalize == "centred" else None
        return normalized(r.vector(i, column), i, normalize, self.Pi, mean)

    def top(self, name: str, token: str | int, *, k: int = 10, column: bool = False, normalize: str = "none",
            exclude_self: bool = False) -> list[tuple[str, float]]:
        """Top-k (token string, value) of the normalised row (column) of ``token`` in readout ``name``."""
        i = token if isinstance(token, int) else self.index(token)
        return top_of_vector(self.vector(name, i, column=column, normalize=normalize), self.vocab, k,
                             exclude=i if exclude_self else None)


def open_readouts(stats: str | Path | None = None, run: str | Path | None = None, step: int | None = None, *,
                  learned: Iterable[str] = tuple(LEARNED_READOUTS), layer: int | None = None,
                  mmap: bool = True) -> Readouts:
    """Readouts of a basis folder (``stats``) and/or of a run's checkpoint ``step`` (default: the latest).

    With ``run`` and no ``stats`` the run's own basis is used (its --stats or RUN/basis/). ``mmap``:
    memory-map the basis and the checkpoint, so opening costs header parses and a query reads only
    what its products need. ``learned``/``layer`` choose the learned readouts (every layer by default).
    """
    from leadingterms.basis import load_basis

    if stats is None and run is None:
        raise LeadingTermsError("give a basis (--stats DIR) or a run (--run RUN)")
    run_obj = None
    if run is not None:
        from leadingterms.training import load_run

        run_obj = load_run(run)
    # with a run, the basis (its own, or the one given) must be of the run's corpus
    basis = run_obj.basis(mmap=mmap, stats=stats) if run_obj is not None else load_basis(str(stats), mmap=mmap)
    if basis.vocab is None:
        raise LeadingTermsError(f"the basis in {stats or run} has no vocabulary; rebuild it with "
                                "`leadingterms stats`")
    readouts = {name: basis_readout(basis, name) for name in BASIS_NAMES}
    s = None
    if run_obj is not None:
        weights, s = checkpoint_weights(run_obj, step, mmap=mmap)
        if weights["W_O"].shape[0] != basis.V:
            raise LeadingTermsError(f"the run's weights (V={weights['W_O'].shape[0]}) do not match the basis "
                                    f"(V={basis.V}); give the run's own basis")
        readouts.update({r.name: r for r in learned_readouts(weights, run_obj.config.layers, learned, layer)})
    return Readouts(list(basis.vocab), basis.Pi, readouts, s)


def checkpoint_weights(run: Any, step: int | None, *, mmap: bool = True) -> tuple[dict[str, Tensor], int]:
    """The model weights (parameter names) of ``run``'s checkpoint ``step`` (None: the latest) and that step,
    verified like every checkpoint read (:meth:`leadingterms.training.Run.checkpoint_state`: this run's,
    finite); memory-mapped unless ``mmap`` is False."""
    s = run._step(step)
    groups, _ = run.checkpoint_state(s, mmap=mmap)
    weights = groups["model"]
    if "W_O" not in weights:
        raise LeadingTermsError(f"checkpoint of step {s} in {run.path} holds no model weights")
    return weights, s


def association_table(
    basis: _Basis | None,
    vocab: Sequence[str],
    tokens: Iterable[str],
    *,
    names: Sequence[str] = BASIS_NAMES,
    learned: Mapping[str, Tensor] | None = None,
    k: int = 10,
    directions: Sequence[str] = DIRECTIONS,
) -> list[dict[str, Any]]:
    """Tidy table of readouts: one dict per (basis, token, direction, rank) with keys
    ``basis, token, direction, rank, other, value`` (rank 1 = largest value).

    ``names`` are basis names (read from ``basis``); ``learned`` adds matrices by their own
    name (e.g. ``{"W_O": ..., "layers.0.V": ...}``, each (V, V)); both use the same vocab.
    """
    for d in directions:
        if d not in DIRECTIONS:
            raise LeadingTermsError(f"direction must be 'row' or 'column', got {d!r}")
    toks = list(tokens)
    ids = [token_index(vocab, t) for t in toks]
    if names and basis is None:
        raise LeadingTermsError("association_table needs a basis for basis names")
    readouts = [basis_readout(basis, n) for n in names] if basis is not None else []
    readouts += [Readout(n, n, "row", "column", (M,)) for n, M in (learned or {}).items()]
    rows: list[dict[str, Any]] = []
    for r in readouts:
        if r.V != len(vocab):
            raise LeadingTermsError(f"{r.name} of size {r.V} does not match a vocabulary of {len(vocab)}")
        for tok, i in zip(toks, ids, strict=True):
            for d in directions:
                top = top_of_vector(r.vector(i, d == "column"), vocab, k)
                rows += [dict(basis=r.name, token=tok, direction=d, rank=rank, other=other, value=value)
                         for rank, (other, value) in enumerate(top, start=1)]
    return rows


# ----------------------------------------------------------------------------- the associations stage

_LEARNED_ALIASES = {"VW_O": "V·W_O", "V*W_O": "V·W_O", "V.W_O": "V·W_O"}


@dataclass(kw_only=True)
class AssociationsConfig:
    """``leadingterms associations``: top-k tokens of rows/columns of basis matrices and learned weights."""

    token: list[str] = option(help="one or more token strings of the vocabulary", metavar="TOKEN",
                              positional=True, nargs="+")
    stats: str | None = option(None, help="basis folder from `leadingterms stats` (default with --run: the "
                               "run's own basis)", metavar="DIR")
    run: str | None = option(None, help="also read the learned weights of this training run", metavar="RUN")
    step: int | None = option(None, help="checkpoint step of --run (default: the latest)", metavar="S",
                              check=nonnegative_int)
    basis: list[str] = option(default_factory=lambda: ["bigram"], sep=",", metavar="NAMES",
                              choices=(*BASIS_NAMES, "all", "none"),
                              help="basis matrices, comma-separated, or all / none: "
                              + ", ".join(f"{n}={m.symbol}" for n, m in MATRICES.items()) + " (default bigram)")
    learned: list[str] | None = option(None, sep=",", metavar="NAMES",
                                       choices=(*LEARNED_READOUTS, *_LEARNED_ALIASES, "all"),
                                       help="learned readouts of --run, comma-separated: W_O, V, V·W_O (or VW_O), "
                                       "W (default with --run: all)")
    layer: int | None = option(None, help="only this layer's learned weights (default: every layer)",
                               metavar="L", check=nonnegative_int)
    k: int = option(10, help="how many tokens", check=positive_int)
    column: bool = option(False, help="read the column of TOKEN instead of its row")
    exclude_self: bool = option(False, help="leave TOKEN itself out of the list")
    normalize: str = option("none", choices=NORMALIZATIONS,
                            help="none: raw values; freq: ÷ π of the listed token; pmi: ÷ π of both tokens; "
                            "centred: minus the mean row (column); docs/theory.md (7.4)-(7.7)")
    json: bool = option(False, help="print JSON instead of tables")

    def check(self) -> None:
        if self.stats is None and self.run is None:
            raise LeadingTermsError("give a basis (--stats DIR) or a run (--run RUN)")
        if self.run is None:
            for name, given in (("--step", self.step is not None), ("--learned", self.learned is not None),
                                ("--layer", self.layer is not None)):
                if given:
                    raise LeadingTermsError(f"{name} reads a training run: give --run RUN")

    def basis_names(self) -> list[str]:
        if "none" in self.basis:
            return []
        return list(BASIS_NAMES) if "all" in self.basis else list(dict.fromkeys(self.basis))

    def learned_names(self) -> list[str]:
        if self.run is None:
            return []
        chosen = self.learned or ["all"]
        if "all" in chosen:
            return list(LEARNED_READOUTS)
        return list(dict.fromkeys(_LEARNED_ALIASES.get(n, n) for n in chosen))


@dataclass
class ReadoutList:
    """The top-k of one readout for one token: ``readout`` name, ``symbol``, ``token``, ``direction``
    (row/column), ``index`` / ``listed``: what the token and the listed tokens are, ``top`` (token, value)."""

    readout: str
    symbol: str
    token: str
    direction: str
    index: str
    listed: str
    top: list[tuple[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {"readout": self.readout, "symbol": self.symbol, "token": self.token, "direction": self.direction,
                "token_is": self.index, "listed_are": self.listed,
                "top": [{"rank": r, "token": t, "value": v} for r, (t, v) in enumerate(self.top, start=1)]}


@dataclass
class AssociationsResult:
    """Every requested list, token by token (basis readouts first, then learned ones)."""

    lists: list[ReadoutList]
    normalize: str
    k: int
    stats: str | None = None
    run: str | None = None
    step: int | None = None
    as_json: bool = False
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"stats": self.stats, "run": self.run, "step": self.step, "normalize": self.normalize,
                "k": self.k, "lists": [x.to_json() for x in self.lists]}


def run_associations(cfg: AssociationsConfig) -> AssociationsResult:
    """Open the basis (and checkpoint) memory-mapped and read every (token, readout) list."""
    check_config(cfg)
    learned = cfg.learned_names()
    ro = open_readouts(cfg.stats, cfg.run, cfg.step, learned=learned, layer=cfg.layer)
    names = cfg.basis_names() + [n for n in ro.readouts if n not in BASIS_NAMES]
    if not names:
        raise LeadingTermsError("nothing to read: --basis none and no --run")
    ids = [ro.index(t) for t in cfg.token]  # every token checked before any work
    lists = []
    for tok, i in zip(cfg.token, ids, strict=True):
        for name in names:
            r = ro.get(name)
            top = ro.top(name, i, k=cfg.k, column=cfg.column, normalize=cfg.normalize,
                         exclude_self=cfg.exclude_self)
            index, listed = (r.cols, r.rows) if cfg.column else (r.rows, r.cols)
            lists.append(ReadoutList(name, r.symbol, tok, DIRECTIONS[cfg.column], index, listed, top))
    return AssociationsResult(lists, cfg.normalize, cfg.k, cfg.stats, cfg.run, ro.step, cfg.json)
