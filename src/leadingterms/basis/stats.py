"""Streaming computation of the docs/theory.md §2 statistics: O(N·T²) gathers and scatter-adds.

Index conventions (sequence i, positions t = 0..T−1, x_t input, y_t = x_{t+1} target, u = 1/V):

- pairs (t, j) with j <= t, packed row-major (``torch.tril_indices``), P = T(T+1)/2 per row;
  the uniform causal attention weight of a pair is A0[t, j] = 1/(t+1).
- raw sums (before the one 1/(N·T)): ``C[x_t, y_t] += 1`` (bigram counts), ``c[x_t] += 1``,
  ``Phi[y_t, x_j] += 1/(t+1)``, ``A[x_j, x_t] += 1/(t+1)``; then
  ``B_bar = (C − u·c 1ᵀ)/NT``, ``Phi_bar = (Phi − u·1 colsum(Phi)ᵀ)/NT``, ``A_bar = A/NT``, ``Pi = c/NT``.
- attention: ``D[t, j] = M[y_t, x_j] − u·colsum(M)[x_j]`` is a gather from the column-centred
  ``M' = M − u·1 colsum(M)ᵀ``; ``K[t, j] = (D[t, j] − mean_{k<=t} D[t, k])/(t+1)`` is J_t
  applied to row t; ``Q[x_t, x_j] += K[t, j]`` (scatter-add); ``Delta[t − j] += K[t, j]``.

No one-hot matrix and no T×T×T tensor is formed. Memory: the V×V accumulators (over the
compact vocabulary of tokens present) plus, for the torch kernel, one chunk of rows, chosen so
that the chunk's pair arrays stay within :data:`DEFAULT_CHUNK_BYTES`.

Structure: :func:`bigram_sums` / :func:`attention_sums` give the raw sums of some rows
(:mod:`leadingterms.basis.sums`) with a per-row kernel: compiled on the CPU
(:mod:`leadingterms.basis.native`), torch ops on chunks elsewhere (:mod:`leadingterms.basis.chunk`);
:func:`finish_bigram` / :func:`finish_attention` normalise merged sums once. :func:`reduce_basis` is
the whole basis as a map-reduce over shards of rows (docs/theory.md (2.25)); :func:`compute_basis`
is its one-shard case.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from leadingterms.basis import native
from leadingterms.basis._tokens import OTHER_TOKEN, Source, token_counts, top_k_map
from leadingterms.basis.buffers import FRESH, TASK_BUFFERS, Buffers, merge_recycling, release_task_buffers
from leadingterms.basis.chunk import DEFAULT_CHUNK_BYTES, Chunk, chunk_rows_for
from leadingterms.basis.native import NativeRows
from leadingterms.basis.sums import AttentionSums, BigramSums, Sums, expand, expand_vec
from leadingterms.basis.types import Basis
from leadingterms.budget import check_memory, format_bytes, peak_rss_bytes
from leadingterms.distributed import in_worker
from leadingterms.errors import LeadingTermsError
from leadingterms.progress import bar
from leadingterms.validate import dtype_to_name, parse_dtype, token_rows

MLike = Tensor | tuple[Tensor, Tensor]
SumsT = TypeVar("SumsT", bound=Sums)

def _counts_dtype(dtype: torch.dtype) -> torch.dtype:
    """Bigram counts are accumulated exactly: in the float64 B buffer itself (exact to 2^53), or
    in int32 next to float32 statistics."""
    return torch.float64 if dtype == torch.float64 else torch.int32


def estimate_bytes(V: int, T: int, dtype: torch.dtype = torch.float64, *, n_matrices: int = 6,
                   tasks: int = 1) -> int:
    """Peak bytes of a basis computation: ``n_matrices`` V×V float buffers (+ int32 bigram counts
    for float32) plus one chunk's pair working set; each of ``tasks`` > 1 tasks running at once in
    this process (worker threads) adds its own pass-1 sums (3 V×V) and chunk."""
    item = torch.empty((), dtype=dtype).element_size()
    per_cell = n_matrices * item + (0 if _counts_dtype(dtype) == dtype else 4)
    per_task = 3 * item * V * V + DEFAULT_CHUNK_BYTES
    return per_cell * V * V + DEFAULT_CHUNK_BYTES + (max(1, tasks) - 1) * per_task + 64 * 2**20


def _check_memory(V: int, T: int, dtype: torch.dtype, n_matrices: int, what: str, tasks: int = 1) -> None:
    fixes = ["use fewer --workers (each holds its own V×V sums)"] if tasks > 1 else []
    fixes.append("restrict the vocabulary with --top-k K" + (" (e.g. --top-k 3000)" if V > 3001 else ""))
    check_memory(estimate_bytes(V, T, dtype, n_matrices=n_matrices, tasks=tasks), f"{what} at V={V}",
                 ", ".join(fixes) + " or use --dtype float32")


def check_basis_memory(V_out: int, T: int, dtype: torch.dtype, reserve_matrices: int = 0, tasks: int = 1) -> None:
    """Refuse (one line) before allocating when :func:`reduce_basis` with these arguments would not fit."""
    _check_memory(V_out, T, dtype, 6 + reserve_matrices, "the basis statistics", tasks=tasks)


def _row_kernel(buffers: Buffers, src: Source, rows: int, dtype: torch.dtype) -> Chunk | NativeRows:
    """The per-row kernels of both passes over the rows of ``src``: compiled on the CPU
    (:mod:`leadingterms.basis.native`), else torch ops on chunks of ``rows`` rows
    (:class:`~leadingterms.basis.chunk.Chunk`; GPUs). The same sums."""
    if kernel_name(src.device) == "native":
        return NativeRows(src.T, src.Vc, dtype, src.N)
    return buffers.chunk(src.T, min(rows, src.N), src.Vc, dtype, src.device)


def kernel_name(device: str | torch.device) -> str:
    """"native" or "torch": which kernel :func:`_row_kernel` runs on ``device``."""
    return "native" if torch.device(device).type == "cpu" and native.available() else "torch"


# ----------------------------------------------------------------------------------------
# Pass 1: bigram, context, Pi, A
# ----------------------------------------------------------------------------------------
def bigram_sums(src: Source, dtype: torch.dtype, rows: int, progress: bool = False, *,
                buffers: Buffers = FRESH) -> BigramSums:
    """Raw pass-1 sums of the rows of ``src`` over its compact vocabulary (docs/theory.md (2.23)).
    ``buffers``: where the chunk and the accumulators come from (:mod:`leadingterms.basis.buffers`)."""
    Vc, T, dev = src.Vc, src.T, src.device
    kernel = _row_kernel(buffers, src, rows, dtype)
    counts = buffers.zeros(Vc * Vc, _counts_dtype(dtype), dev)
    c = torch.zeros(Vc, dtype=torch.long, device=dev)
    PhiA = buffers.zeros(2 * Vc * Vc, dtype, dev)  # (Phi, A_t) of each cell in adjacent slots
    kernel.bigram(src.blocks(rows, desc="basis: bigram/context", progress=progress), counts, c, PhiA)
    return BigramSums(rows=src.N, T=T, V=src.V, ids=None if Vc == src.V else src.ids,
                      C=counts.view(Vc, Vc), c=c, PhiA=PhiA.view(Vc, Vc, 2))


def finish_bigram(s: BigramSums, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Raw sums -> (B_bar, Phi_bar, Pi, A_bar): expand to V, then the rank-one centrings and the one
    1/(N·T) of (2.23). ``C`` becomes B_bar in place when it already has ``dtype``."""
    NT = float(s.rows * s.T)
    V, ids = s.V, s.ids
    u = 1.0 / V
    Pi = expand_vec(s.c.to(dtype).div_(NT), ids, V)
    ones = torch.ones(V, dtype=dtype, device=Pi.device)
    B_bar = expand(s.C.to(dtype).div_(NT), ids, V).addr_(Pi, ones, alpha=-u)  # (C − u·c 1ᵀ)/NT
    Phi = s.Phi.contiguous().div_(NT)
    colsum = expand_vec(Phi.sum(0), ids, V)
    Phi_bar = expand(Phi, ids, V).addr_(ones, colsum, alpha=-u)  # (Phi − u·1 colsumᵀ)/NT
    A_bar = expand(s.A_t.T.contiguous().div_(NT), ids, V)
    return B_bar, Phi_bar, Pi, A_bar


def bigram_context_stats(tokens: Any, V: int, *, dtype: torch.dtype = torch.float64, progress: bool = False,
                         chunk_rows: int | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(B_bar, Phi_bar, Pi, A_bar) of ``tokens`` (N, T+1), normalised by 1/(N·T) (docs/theory.md (2.1)–(2.7)).

    B_bar (V, V) row = current, col = next; Phi_bar (V, V) row = next, col = context;
    Pi (V,) frequency as current token; A_bar (V, V) row = context, col = query.
    Torch tokens are processed on their device; numpy/memmap tokens on the CPU.
    """
    dtype_to_name(dtype)
    tokens = token_rows(tokens)
    dev = tokens.device if isinstance(tokens, Tensor) else torch.device("cpu")
    src = Source.build(tokens, V, device=dev)
    _check_memory(src.Vc, src.T, dtype, 4, "the bigram/context statistics")
    rows = chunk_rows or chunk_rows_for(src.T)
    return finish_bigram(bigram_sums(src, dtype, rows, progress), dtype)


# ----------------------------------------------------------------------------------------
# Pass 2: attention statistics Q_bar, Delta for a given M
# ----------------------------------------------------------------------------------------
def _centred_block(M: MLike, src: Source, dtype: torch.dtype) -> Tensor:
    """M'[ids, ids] (Vc, Vc) with M' = M − u·1 colsum(M)ᵀ; ``M`` dense (V, V) or factors (Lf, Rf).

    Only the compact sub-block is formed: for factors, ``(Lf[ids] − u·1ᵀLf) @ Rf[:, ids]``.
    """
    V, ids, u = src.V, src.ids, 1.0 / src.V
    if isinstance(M, (tuple, list)):
        if len(M) != 2:
            raise LeadingTermsError("M factors must be a pair (Lf, Rf) with M = Lf @ Rf")
        Lf, Rf = M
        if Lf.ndim != 2 or Rf.ndim != 2 or Lf.shape[0] != V or Rf.shape[1] != V or Lf.shape[1] != Rf.shape[0]:
            raise LeadingTermsError(
                f"M factors must be (V, r) and (r, V) with V={V}, got {tuple(Lf.shape)} and {tuple(Rf.shape)}")
        Lf = Lf.to(device=src.device, dtype=dtype)
        Rf = Rf.to(device=src.device, dtype=dtype)
        left = Lf.index_select(0, ids) - u * Lf.sum(0)[None, :]
        return left @ Rf.index_select(1, ids)
    if M.ndim != 2 or tuple(M.shape) != (V, V):
        raise LeadingTermsError(f"M must be ({V}, {V}), got {tuple(M.shape)}")
    return _centred_dense(M, None if src.Vc == V else ids, dtype, src.device)


def _centred_dense(M: Tensor, ids: Tensor | None, dtype: torch.dtype, device: torch.device) -> Tensor:
    """M'[ids, ids] (or all of M' (V, V) for ``ids`` None), M' = M − u·1 colsum(M)ᵀ, of a dense M (V, V)."""
    Md = M.to(device=device, dtype=dtype)
    u = 1.0 / Md.shape[0]
    colsum = Md.sum(0)
    if ids is None:
        return Md - u * colsum[None, :]
    return Md.index_select(0, ids).index_select(1, ids) - u * colsum[ids][None, :]


def attention_sums(src: Source, Mc: Tensor, dtype: torch.dtype, rows: int, progress: bool = False, *,
                   buffers: Buffers = FRESH) -> AttentionSums:
    """Raw pass-2 sums of the rows of ``src`` for the centred compact block ``Mc`` (:func:`_centred_block`);
    ``buffers`` as in :func:`bigram_sums`."""
    Vc, T, dev = src.Vc, src.T, src.device
    kernel = _row_kernel(buffers, src, rows, dtype)
    Mc = Mc.reshape(-1)
    Q = buffers.zeros(Vc * Vc, dtype, dev)
    Delta = torch.zeros(T, dtype=dtype, device=dev)
    kernel.attention(src.blocks(rows, desc="basis: attention", progress=progress), Mc, Q, Delta)
    return AttentionSums(rows=src.N, T=T, V=src.V, ids=None if Vc == src.V else src.ids,
                         Q=Q.view(Vc, Vc), Delta=Delta)


def finish_attention(s: AttentionSums) -> tuple[Tensor, Tensor]:
    """Raw sums -> (Q_bar (V, V), Delta (T,)), normalised by 1/(N·T)."""
    NT = float(s.rows * s.T)
    return expand(s.Q.div_(NT), s.ids, s.V), s.Delta.div_(NT)


def _attention_source(tokens: Any, V: int, M: MLike) -> Source:
    tokens = token_rows(tokens)
    ref = M[0] if isinstance(M, (tuple, list)) else M
    if not isinstance(ref, Tensor):
        raise LeadingTermsError("M must be a torch tensor (V, V) or a pair of tensors (Lf, Rf)")
    return Source.build(tokens, V, device=ref.device)


def attention_stats(tokens: Any, V: int, M: MLike, *, dtype: torch.dtype = torch.float64, progress: bool = False,
                    chunk_rows: int | None = None) -> tuple[Tensor, Tensor]:
    """(Q_bar, Delta) of ``tokens`` (N, T+1) for a given M, normalised by 1/(N·T) (docs/theory.md §2.4, §5).

    ``M`` (V, V) row = next token, col = context token (``B̄ᵀB̄Φ̄`` for the corpus basis,
    ``W_Oᵀ Vᵀ`` in the Shadow), or factors ``(Lf, Rf)`` with M = Lf @ Rf, Lf (V, r), Rf (r, V):
    then only ``M[present, present]`` is formed. Linear in M. Q_bar (V, V) row = query token,
    col = key token; Delta (T,) offset m = t − j. Computed on M's device.
    """
    dtype_to_name(dtype)
    src = _attention_source(tokens, V, M)
    _check_memory(src.Vc, src.T, dtype, 3, "the attention statistics")
    rows = chunk_rows or chunk_rows_for(src.T)
    return finish_attention(attention_sums(src, _centred_block(M, src, dtype), dtype, rows, progress))


@dataclass
class BatchSums:
    """Raw sums of one batch (docs/theory.md §5) over the tokens it contains, before the one 1/(|ℬ|·T).

    ``ids`` (Vc,) output id of each compact id, ascending (all V ids when the batch holds more
    than half of them); ``counts`` (Vc, Vc) bigram counts, row = current token x_t, col = next
    token y_t; ``c`` (Vc,) occurrences as current token; ``Phi`` (Vc, Vc) Σ 1/(t+1) per pair
    (y_t, x_j), j <= t, row = next token, col = context token; ``NT`` = rows·T. A token absent
    from the batch has no row or column: its raw sums are zero.
    """

    ids: Tensor
    counts: Tensor
    c: Tensor
    Phi: Tensor
    NT: float
    _src: Source
    _dtype: torch.dtype
    _rows: int

    def attention(self, Mc: Tensor) -> tuple[Tensor, Tensor]:
        """Raw (Q (Vc, Vc) row = query x_t, col = key x_j; Delta (T,) offset m = t − j) for
        ``Mc`` (Vc, Vc) = M'[ids, ids], M' = M − u·1 colsum(M)ᵀ the column-centred M."""
        s = attention_sums(self._src, Mc, self._dtype, self._rows)
        return s.Q, s.Delta


def batch_sums(tokens: Any, V: int, *, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> BatchSums:
    """:class:`BatchSums` of ``tokens`` (B, T+1) on ``device`` (default: the CPU): the compact
    accumulators of :func:`bigram_context_stats`, not expanded to (V, V) nor normalised, for callers
    that work on the batch's tokens only (the SGD shadow, :mod:`leadingterms.shadow`)."""
    dtype_to_name(dtype)
    src = Source.build(token_rows(tokens), V, device=torch.device(device or "cpu"))
    rows = chunk_rows_for(src.T)
    s = bigram_sums(src, dtype, rows)
    return BatchSums(ids=src.ids, counts=s.C.to(dtype), c=s.c.to(dtype), Phi=s.Phi.contiguous(),
                     NT=float(src.N * src.T), _src=src, _dtype=dtype, _rows=rows)


def attention_kernel(tokens: Any, V: int, M: MLike, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """K_i (N, T, T) of every row (docs/theory.md §2.4, unnormalised): ``K[i, t, j]`` for j <= t, 0 above.

    For inspection and tests on small inputs (it materialises N·T² numbers).
    """
    src = _attention_source(tokens, V, M)
    T = src.T
    rows = min(chunk_rows_for(T), src.N)
    ch = Chunk(T, rows, src.Vc, dtype, src.device)
    Mc = _centred_block(M, src, dtype).reshape(-1)
    out = torch.zeros(src.N, T, T, dtype=dtype, device=src.device)
    t, j = torch.tril_indices(T, T, device=src.device)
    start = 0
    for z in src.blocks(rows):
        ch.load(z)
        out[start : start + ch.n, t, j] = ch.kernel(Mc)
        start += ch.n
    return out


# ----------------------------------------------------------------------------------------
# The whole basis: map-reduce over pieces of rows
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PassPlan:
    """What a per-piece task needs besides its rows: ``V`` (ids of the rows), ``V_out`` (after the top-K
    remap), the dtype name, rows per chunk, the device, and whether to draw a bar per chunk."""

    V: int
    V_out: int
    dtype: str
    chunk_rows: int
    device: str = "cpu"
    progress: bool = False


def _piece_source(rows: Any, plan: PassPlan, remap: Tensor | None) -> Source:
    if in_worker():
        torch.set_num_threads(1)  # one thread per task: a Dask worker runs one task per thread
    tokens = rows.load() if hasattr(rows, "load") else rows
    return Source.build(tokens, plan.V, remap=remap, V_out=plan.V_out, device=torch.device(plan.device))


def bigram_task(rows: Any, plan: PassPlan, remap: Tensor | None) -> BigramSums:
    """Pass 1 of one piece of rows (an array, or a reference with ``load()``) -> raw sums on the CPU."""
    src = _piece_source(rows, plan, remap)
    return _on_cpu(bigram_sums(src, parse_dtype(plan.dtype), plan.chunk_rows, plan.progress, buffers=TASK_BUFFERS))


def attention_task(rows: Any, plan: PassPlan, remap: Tensor | None, M: Tensor) -> AttentionSums:
    """Pass 2 of one piece of rows for M (V_out, V_out) -> raw sums on the CPU."""
    src = _piece_source(rows, plan, remap)
    dtype = parse_dtype(plan.dtype)
    # M' over all V, formed once per process and shared by its tasks; a piece over fewer tokens takes its block
    Mc = TASK_BUFFERS.centred(M, (dtype, str(src.device)), lambda: _centred_dense(M, None, dtype, src.device))
    if src.Vc < src.V:
        Mc = Mc.index_select(0, src.ids).index_select(1, src.ids)
    return _on_cpu(attention_sums(src, Mc, dtype, plan.chunk_rows, plan.progress, buffers=TASK_BUFFERS))


def _on_cpu(s: SumsT) -> SumsT:
    for name in s.MATRICES + s.VECTORS + ("ids",):
        t = getattr(s, name)
        if isinstance(t, Tensor):
            setattr(s, name, t.cpu())
    return s


#: ``run_pass(name, task, pieces, shared) -> merged sums``: runs ``task(piece, *shared)`` on every piece
#: and merges the results in piece order (:func:`run_local`, or the resumable Dask runner of
#: :mod:`leadingterms.basis.shards`).
PassRunner = Callable[[str, Callable[..., Sums], Sequence[Any], tuple[Any, ...]], Sums]


def run_local(name: str, task: Callable[..., Sums], pieces: Sequence[Any], shared: tuple[Any, ...], *,
              progress: bool = False) -> Sums:
    """Every piece here, in order, merged as it comes."""
    acc: Sums | None = None
    it: Any = bar(pieces, total=len(pieces), desc=f"basis: {name}", unit="shard") if progress and len(pieces) > 1 \
        else pieces
    for rows in it:
        acc = merge_recycling(acc, task(rows, *shared))
    assert acc is not None
    return acc


def _sparse_counts(s: BigramSums) -> sp.csr_matrix:
    """Bigram counts (n, n) over ``s.ids`` -> scipy CSR (V, V) in output ids."""
    counts = s.C
    rows, cols = torch.nonzero(counts, as_tuple=True)
    vals = counts[rows, cols]
    ids = torch.arange(s.V) if s.ids is None else s.ids.cpu()
    return sp.csr_matrix(
        (vals.cpu().numpy().astype(np.float64), (ids[rows.cpu()].numpy(), ids[cols.cpu()].numpy())),
        shape=(s.V, s.V),
    )


def reduce_basis(pieces: Sequence[Any], V: int, *, dtype: torch.dtype = torch.float64,
                 vocab: list[str] | None = None, progress: bool = True, top_k: int | None = None,
                 chunk_rows: int | None = None, reserve_matrices: int = 0, device: str = "cpu",
                 counts: Tensor | None = None, run_pass: PassRunner | None = None, tasks_here: int = 1) -> Basis:
    """Every docs/theory.md §2 statistic over all the rows of ``pieces`` (row arrays (n_i, T+1), or
    references with ``shape`` and ``load()``), as a map-reduce (docs/theory.md §2.7).

    Pass 1 per piece gives raw bigram counts, Φ, Ā and token counts; merged (added) they give
    B̄, Φ̄, Π, Ā and M = B̄ᵀB̄Φ̄ (from the sparse counts); pass 2 per piece, given M, gives raw
    Q̄ and Δ; merged and normalised once by 1/(N·T). ``counts`` (V,): token counts over all
    positions, when known (for ``top_k``). ``run_pass``: where the pieces run (default: here);
    ``tasks_here``: how many of its tasks run at once in this process (counted in the memory check; also
    the threads of the sparse products of M).
    """
    t0 = time.perf_counter()
    name = dtype_to_name(dtype)
    if vocab is not None and len(vocab) != V:
        raise LeadingTermsError(f"vocab has {len(vocab)} entries but V={V}")
    if V < 1:
        raise LeadingTermsError(f"vocabulary size must be >= 1, got {V}")
    T = int(pieces[0].shape[1]) - 1
    remap, V_out, token_ids = None, V, None
    if top_k is not None:
        if top_k < 1:
            raise LeadingTermsError(f"--top-k must be >= 1, got {top_k}")
        if top_k < V:
            if counts is None:
                counts = sum((token_counts(p.load() if hasattr(p, "load") else p, V) for p in pieces),
                             torch.zeros(V, dtype=torch.long))
            remap, token_ids = top_k_map(counts, top_k)
            V_out = top_k + 1
            if vocab is not None:
                vocab = [vocab[i] for i in token_ids[:-1]] + [OTHER_TOKEN]
    check_basis_memory(V_out, T, dtype, reserve_matrices, tasks_here)
    rows = chunk_rows or chunk_rows_for(T)
    plan = PassPlan(V=V, V_out=V_out, dtype=name, chunk_rows=rows, device=device,
                    progress=progress and len(pieces) == 1)
    run = run_pass or functools.partial(run_local, progress=progress)

    try:
        s1 = run("bigram/context", bigram_task, pieces, (plan, remap))
        assert isinstance(s1, BigramSums)
        N = s1.rows
        C = _sparse_counts(s1).astype(np.float64 if dtype == torch.float64 else np.float32)
        B_bar, Phi_bar, Pi, A_bar = finish_bigram(s1, dtype)
        del s1
        empty = torch.zeros(0, dtype=dtype)
        basis = Basis(B_bar=B_bar, Phi_bar=Phi_bar, Q_bar=empty, Delta=empty, Pi=Pi, A_bar=A_bar,
                      N=N, T=T, V=V_out, vocab=vocab)
        basis._cache["counts"] = C
        M = basis.M(threads=max(1, tasks_here))  # as many threads as run tasks here

        s2 = run("attention", attention_task, pieces, (plan, remap, M))
        assert isinstance(s2, AttentionSums)
        basis.Q_bar, basis.Delta = finish_attention(s2)
    finally:
        release_task_buffers()
    seconds = time.perf_counter() - t0
    basis.meta = {
        "dtype": name,
        "top_k": top_k if token_ids is not None else None,
        "token_ids": token_ids,
        "seconds": round(seconds, 3),
        "tokens_per_second": round(N * T / max(seconds, 1e-9), 1),
        "peak_memory_bytes": peak_rss_bytes(),
        "peak_memory": format_bytes(peak_rss_bytes()),
        "chunk_rows": rows,
        "bigram_nnz": int(C.nnz),
        "shards": len(pieces),
        "device": device,
    }
    return basis


def compute_basis(tokens: Any, V: int, *, dtype: torch.dtype = torch.float64, vocab: list[str] | None = None,
                  progress: bool = True, top_k: int | None = None, chunk_rows: int | None = None,
                  reserve_matrices: int = 0, device: str = "cpu") -> Basis:
    """Every docs/theory.md §2 statistic of ``tokens`` (N, T+1) over all rows, normalised by 1/(N·T).

    Two streaming passes over the rows, in this process (:func:`reduce_basis` with one piece):
    (1) B_bar, Phi_bar, Pi, A_bar; then M = B̄ᵀB̄Φ̄ from the sparse bigram counts (``nnz·V`` work,
    no dense V³ product); (2) Q_bar, Delta. ``top_k``: see :mod:`leadingterms.basis`. ``meta``
    records dtype, top_k, token_ids (with top_k), seconds, peak memory and chunk rows.
    ``reserve_matrices``: further V×V buffers the caller needs afterwards (e.g. to save), counted
    in the memory check.
    """
    tokens = token_rows(tokens)
    return reduce_basis([tokens], V, dtype=dtype, vocab=vocab, progress=progress, top_k=top_k,
                        chunk_rows=chunk_rows, reserve_matrices=reserve_matrices, device=device)
