"""Raw sums of the two streaming passes (docs/theory.md §2.7), their merge and their compact encoding.

A pass over some rows (a batch, a shard, a whole corpus) gives *raw* sums, before the one
normalisation by 1/(N·T); sums of disjoint row sets merge by addition (the row counts add too),
so a corpus is reduced shard by shard and normalised once at the end
(:func:`leadingterms.basis.stats.finish_bigram`, :func:`~leadingterms.basis.stats.finish_attention`).

Sums may be *compact*: over the ``ids`` (n,) of the tokens present (a (n, n) block of the V×V
matrix). When sums travel between processes or go to a checkpoint, each matrix goes as dense
values or as its nonzero entries (flat index + value), whichever is smaller (:func:`pack`);
merging a sparse entry adds exactly the same numbers as merging it dense.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor


@dataclass
class Coo:
    """The nonzero entries of an (n, n, *tail) array: ``idx`` (nnz,) flat index ((row·n + col)·k + slot,
    k = prod(tail)), ``vals`` (nnz,)."""

    n: int
    idx: Tensor
    vals: Tensor
    tail: tuple[int, ...] = ()

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, self.n, *self.tail)


Entry = Tensor | Coo
_ACC = {torch.int32: torch.int64}  # accumulator dtypes of merged sums (int32 bigram counts of one piece)


def pack(t: Entry) -> Entry:
    """A CPU (n, n, *tail) array as :class:`Coo` when its nonzero entries (index + value) take fewer bytes."""
    if isinstance(t, Coo) or t.ndim < 2:
        return t
    t = t.cpu()
    nnz = int(torch.count_nonzero(t))
    idx_dtype = torch.int32 if t.numel() < 2**31 else torch.int64
    idx_item = 4 if idx_dtype == torch.int32 else 8
    if nnz * (idx_item + t.element_size()) >= t.numel() * t.element_size():
        return t
    flat = t.reshape(-1)
    idx = torch.nonzero(flat).reshape(-1)
    return Coo(int(t.shape[0]), idx.to(idx_dtype), flat[idx], tuple(t.shape[2:]))


def densify(e: Entry, dtype: torch.dtype | None = None) -> Tensor:
    """The (n, n, *tail) dense array of an entry."""
    if isinstance(e, Tensor):
        return e if dtype is None else e.to(dtype)
    out = torch.zeros(int(np.prod(e.shape)), dtype=dtype or e.vals.dtype)
    out[e.idx.long()] = e.vals.to(out.dtype)
    return out.view(e.shape)


def add_into(acc: Tensor, part: Entry, ids: Tensor | None) -> None:
    """``acc[ids][:, ids] += part`` for an (n, n, *tail) ``part`` over ``ids`` (None: the whole of ``acc``);
    ``acc`` (V, V, *tail) contiguous."""
    V = acc.shape[0]
    if isinstance(part, Coo):
        flat = part.idx.long().to(acc.device)
        if ids is not None:
            k = int(np.prod(part.tail))
            ids = ids.to(acc.device)
            cell, slot = flat // k, flat % k
            flat = (ids[cell // part.n] * V + ids[cell % part.n]) * k + slot
        acc.view(-1).index_add_(0, flat, part.vals.to(device=acc.device, dtype=acc.dtype))
    elif ids is None:
        acc += part.to(device=acc.device, dtype=acc.dtype)
    else:
        ids = ids.to(acc.device)
        acc.index_put_((ids[:, None], ids[None, :]), part.to(device=acc.device, dtype=acc.dtype), accumulate=True)


def expand(small: Tensor, ids: Tensor | None, V: int) -> Tensor:
    """(n, n) over ``ids`` -> (V, V), zero where a token is absent (no copy when ``ids`` is None)."""
    if ids is None:
        return small
    out = small.new_zeros((V, V))
    out[ids[:, None], ids[None, :]] = small
    return out


def expand_vec(small: Tensor, ids: Tensor | None, V: int) -> Tensor:
    """(n,) over ``ids`` -> (V,)."""
    if ids is None:
        return small
    out = small.new_zeros(V)
    out[ids] = small
    return out


@dataclass
class Sums:
    """Fields common to the raw sums: ``rows`` N (sequences summed), ``T``, ``V`` (output vocabulary) and
    ``ids`` (n,) int64 the output id of each compact row/column (None: all V, in order)."""

    rows: int
    T: int
    V: int
    ids: Tensor | None

    #: the (n, n) matrices and (n,)/(T,) vectors of the subclass, by field name
    MATRICES: ClassVar[tuple[str, ...]] = ()
    VECTORS: ClassVar[tuple[str, ...]] = ()
    TAIL: ClassVar[dict[str, tuple[int, ...]]] = {}

    def entries(self) -> dict[str, Entry]:
        return {name: getattr(self, name) for name in self.MATRICES + self.VECTORS}

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (e.g. by Dask) on the CPU, each matrix dense or sparse, whichever is smaller; as NumPy
        arrays, which pickle protocol 5 (Dask's) passes out of band, without a copy."""
        state: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self.MATRICES:
            e = pack(state[name])
            state[name] = (e.n, to_numpy(e.idx), to_numpy(e.vals), e.tail) if isinstance(e, Coo) else to_numpy(e)
        for name in self.VECTORS + ("ids",):
            if state[name] is not None:
                state[name] = to_numpy(state[name])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, v in state.items():
            if isinstance(v, tuple):
                state[name] = Coo(v[0], _tensor(v[1]), _tensor(v[2]), v[3])
            elif isinstance(v, np.ndarray):
                state[name] = _tensor(v)
        self.__dict__.update(state)

    def full(self) -> Sums:
        """These sums as dense (V, V) accumulators on the CPU (``ids`` None); int32 counts widen to int64."""
        out: dict[str, Any] = {"rows": self.rows, "T": self.T, "V": self.V, "ids": None}
        for name in self.MATRICES:
            e = getattr(self, name)
            own = e.vals.dtype if isinstance(e, Coo) else e.dtype
            dt = _ACC.get(own, own)
            if self.ids is None and isinstance(e, Tensor):
                out[name] = e.to(device="cpu", dtype=dt)
            else:
                out[name] = torch.zeros((self.V, self.V, *self.TAIL.get(name, ())), dtype=dt)
                add_into(out[name], e, self.ids)
        for name in self.VECTORS:
            v = getattr(self, name).cpu()
            out[name] = v if name == "Delta" else expand_vec(v, self.ids, self.V)
        return type(self)(**out)

    def add(self, part: Sums) -> None:
        """Add the sums of other rows (same T, V) into these dense, full accumulators."""
        if self.ids is not None or part.T != self.T or part.V != self.V:
            raise ValueError("sums are added into full accumulators of the same T and V")
        for name in self.MATRICES:
            add_into(getattr(self, name), getattr(part, name), part.ids)
        for name in self.VECTORS:
            acc, v = getattr(self, name), getattr(part, name).to(getattr(self, name).device)
            if name == "Delta" or part.ids is None:
                acc += v.to(acc.dtype)
            else:
                acc.index_add_(0, part.ids.to(acc.device), v.to(acc.dtype))
        self.rows += part.rows


@dataclass
class BigramSums(Sums):
    """Pass 1 (docs/theory.md (2.23)): ``C`` (n, n) bigram counts, row = current x_t, col = next y_t
    (float64, or int32 next to float32 statistics); ``c`` (n,) int64 current-token counts;
    ``PhiA`` (n, n, 2) two sums of 1/(t+1) in adjacent slots (the compiled kernel adds into both in one
    sweep): ``Phi`` = PhiA[..., 0], row = next y_t, col = context x_j, and ``A_t`` = PhiA[..., 1],
    row = query x_t, col = context x_j (the transpose of Ā's layout)."""

    C: Tensor = None  # type: ignore[assignment]
    c: Tensor = None  # type: ignore[assignment]
    PhiA: Tensor = None  # type: ignore[assignment]

    MATRICES: ClassVar[tuple[str, ...]] = ("C", "PhiA")
    VECTORS: ClassVar[tuple[str, ...]] = ("c",)
    TAIL: ClassVar[dict[str, tuple[int, ...]]] = {"PhiA": (2,)}

    @property
    def Phi(self) -> Tensor:
        """(n, n) view: row = next y_t, col = context x_j."""
        return self.PhiA[..., 0]

    @property
    def A_t(self) -> Tensor:
        """(n, n) view: row = query x_t, col = context x_j."""
        return self.PhiA[..., 1]


@dataclass
class AttentionSums(Sums):
    """Pass 2 for a given M: ``Q`` (n, n) Σ K[t, j], row = query x_t, col = key x_j; ``Delta`` (T,) by offset
    m = t − j."""

    Q: Tensor = None  # type: ignore[assignment]
    Delta: Tensor = None  # type: ignore[assignment]

    MATRICES: ClassVar[tuple[str, ...]] = ("Q",)
    VECTORS: ClassVar[tuple[str, ...]] = ("Delta",)


def merge(acc: Sums | None, part: Sums) -> Sums:
    """``acc`` + ``part``: the first sums are kept as they are (a single part stays exactly the kernel's
    output); a second one turns them into full dense accumulators first."""
    if acc is None:
        dense = all(isinstance(e, Tensor) for e in part.entries().values())
        return part if dense else part.full()
    if acc.ids is not None or any(getattr(acc, n).dtype in _ACC for n in acc.MATRICES):
        acc = acc.full()
    acc.add(part)
    return acc


def _tensor(a: np.ndarray) -> Tensor:
    """A tensor over ``a`` (a received buffer); copied when read-only, since sums are added into in place."""
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def to_numpy(t: Tensor) -> np.ndarray:
    return t.detach().cpu().contiguous().numpy()
