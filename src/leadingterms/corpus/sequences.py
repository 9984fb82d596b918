"""Token documents -> (N, T+1) sequences (docs/theory.md §7.1), strided packing and the train/validation split.

Rule (default): keep the documents with at least T+1 tokens, truncated to their first T+1
tokens, in document order. Packing (``pack=True``): concatenate the documents (in order) into
one stream and take windows of T+1 tokens starting at 0, S, 2S, ... (S = stride, default T+1:
disjoint windows); documents of any length contribute.

The validation split is by document: ``round(f * n)`` of the n eligible documents, chosen by a
permutation seeded with ``seed``, keep their order and become the validation sequences.

:class:`RowBuilder` produces the rows of documents fed in order, a batch at a time (the corpus
stage streams a corpus through it); :func:`truncate`, :func:`pack` and :func:`make_sequences`
are the same rules on documents in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from leadingterms.errors import LeadingTermsError


@dataclass
class SequenceSet:
    """Train and validation sequences, (N, T+1) and (N_val, T+1) int64; row = sequence."""

    train: np.ndarray
    val: np.ndarray | None
    n_train_docs: int
    n_val_docs: int
    n_train_capped: int  # sequences beyond --max-sequences (train) that were left out
    n_val_capped: int


def check_stride(T: int, stride: int | None) -> int:
    """The window spacing S (default T+1)."""
    S = T + 1 if stride is None else stride
    if S < 1:
        raise LeadingTermsError(f"--stride must be >= 1, got {S}")
    return S


def n_windows(n_tokens: int, T: int, stride: int | None = None) -> int:
    """Windows of T+1 tokens every S tokens in a stream of ``n_tokens``."""
    S = check_stride(T, stride)
    return 0 if n_tokens < T + 1 else (n_tokens - (T + 1)) // S + 1


class RowBuilder:
    """Rows (k, T+1) of the documents fed to it, in order: truncation (first T+1 tokens of each
    document with >= T+1 tokens) or packing (windows of the concatenated stream every S tokens;
    the stream's tail is carried to the next call)."""

    def __init__(self, T: int, *, pack: bool = False, stride: int | None = None) -> None:
        if T < 1:
            raise LeadingTermsError(f"--seq-len must be >= 1, got {T}")
        self.T, self.pack = T, pack
        self.S = check_stride(T, stride)
        self._tail: np.ndarray | None = None
        self._skip = 0  # stream tokens before the next window start (S > T+1)

    def feed(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Documents given concatenated (``ids``) with their ``lengths`` -> their rows (the ids' dtype)."""
        W = self.T + 1
        ids = np.asarray(ids)
        if not self.pack:
            starts = (np.cumsum(lengths) - lengths)[lengths >= W]
            return ids[starts[:, None] + np.arange(W)] if len(starts) else np.zeros((0, W), dtype=ids.dtype)
        drop = min(self._skip, len(ids))
        self._skip -= drop
        stream = ids[drop:] if self._tail is None else np.concatenate([self._tail, ids[drop:]])
        n = 0 if len(stream) < W else (len(stream) - W) // self.S + 1
        rows = (np.lib.stride_tricks.sliding_window_view(stream, W)[:: self.S][:n].copy() if n
                else np.zeros((0, W), dtype=ids.dtype))
        used = n * self.S
        self._tail = stream[used:].copy()  # fewer than max(S, T+1) tokens
        self._skip += max(0, used - len(stream))
        return rows


def _build(docs: Sequence[np.ndarray], T: int, pack_stream: bool, stride: int | None) -> np.ndarray:
    """Rows (int64) of documents in memory."""
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    ids = np.concatenate([np.asarray(d, dtype=np.int64) for d in docs]) if docs else np.zeros(0, np.int64)
    return RowBuilder(T, pack=pack_stream, stride=stride).feed(ids, lengths)


def truncate(docs: Sequence[np.ndarray], T: int) -> np.ndarray:
    """Rows = the first T+1 tokens of each document with >= T+1 tokens (document order)."""
    return _build(docs, T, False, None)


def pack(docs: Sequence[np.ndarray], T: int, stride: int | None = None) -> np.ndarray:
    """Windows of T+1 tokens of the concatenated documents, starting every ``stride`` tokens."""
    return _build(docs, T, True, stride)


def split_by_document(n_docs: int, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask (n_docs,), True = validation document; ``round(f * n)`` of them (>= 1 if f > 0)."""
    if not 0.0 <= val_fraction < 1.0:
        raise LeadingTermsError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    mask = np.zeros(n_docs, dtype=bool)
    if val_fraction == 0.0 or n_docs == 0:
        return mask
    n_val = max(1, int(round(val_fraction * n_docs)))
    if n_val >= n_docs:
        raise LeadingTermsError(
            f"--val-fraction {val_fraction} leaves no training documents ({n_docs} eligible documents)"
        )
    perm = np.random.default_rng(seed).permutation(n_docs)
    mask[perm[:n_val]] = True
    return mask


def caps(max_sequences: int | None, val_fraction: float) -> tuple[int | None, int | None]:
    """(train cap, validation cap): ``max_sequences`` and ``ceil(max_sequences * f / (1 - f))``."""
    if max_sequences is None:
        return None, None
    if max_sequences < 1:
        raise LeadingTermsError(f"--max-sequences must be >= 1, got {max_sequences}")
    return max_sequences, math.ceil(max_sequences * val_fraction / (1 - val_fraction))


def make_sequences(
    docs: Sequence[np.ndarray],
    T: int,
    *,
    pack_stream: bool = False,
    stride: int | None = None,
    max_sequences: int | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> SequenceSet:
    """Split the documents by document, then build the sequences of each part.

    Eligible documents: those with >= T+1 tokens (all documents when packing). ``max_sequences``
    caps the training sequences (the first ones in document order); the validation sequences
    are capped in the same proportion, ``ceil(max_sequences * f / (1 - f))``.
    """
    if T < 1:
        raise LeadingTermsError(f"--seq-len must be >= 1, got {T}")
    cap_train, cap_val = caps(max_sequences, val_fraction)
    eligible = list(docs) if pack_stream else [d for d in docs if len(d) >= T + 1]
    is_val = split_by_document(len(eligible), val_fraction, seed)
    parts = [[d for d, v in zip(eligible, is_val, strict=True) if v == flag] for flag in (False, True)]
    train, val = (_build(p, T, pack_stream, stride) for p in parts)
    return SequenceSet(
        train=train[:cap_train],
        val=val[:cap_val] if val_fraction > 0 else None,
        n_train_docs=len(parts[0]),
        n_val_docs=len(parts[1]),
        n_train_capped=max(0, len(train) - (len(train) if cap_train is None else cap_train)),
        n_val_capped=max(0, len(val) - (len(val) if cap_val is None else cap_val)),
    )
