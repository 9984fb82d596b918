"""Token documents -> (N, T+1) sequences (SPEC §6), strided packing and the train/validation split.

SPEC §6 rule (default): keep the documents with at least T+1 tokens, truncated to their first
T+1 tokens, in document order. Packing (``pack=True``): concatenate the documents (in order)
into one stream and take windows of T+1 tokens starting at 0, S, 2S, ... (S = stride,
default T+1: disjoint windows); documents of any length contribute.

The validation split is by document: ``round(f * n)`` of the n eligible documents, chosen by a
permutation seeded with ``seed``, keep their order and become ``val_tokens.npy``.
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


def truncate(docs: Sequence[np.ndarray], T: int) -> np.ndarray:
    """SPEC §6: rows = the first T+1 tokens of each document with >= T+1 tokens (document order)."""
    rows = [d[: T + 1] for d in docs if len(d) >= T + 1]
    if not rows:
        return np.zeros((0, T + 1), dtype=np.int64)
    return np.stack(rows).astype(np.int64, copy=False)


def pack(docs: Sequence[np.ndarray], T: int, stride: int | None = None) -> np.ndarray:
    """Windows of T+1 tokens of the concatenated documents, starting every ``stride`` tokens."""
    S = T + 1 if stride is None else stride
    if S < 1:
        raise LeadingTermsError(f"--stride must be >= 1, got {S}")
    stream = np.concatenate([np.asarray(d, dtype=np.int64) for d in docs]) if docs else np.zeros(0, np.int64)
    if len(stream) < T + 1:
        return np.zeros((0, T + 1), dtype=np.int64)
    n = (len(stream) - (T + 1)) // S + 1
    windows = np.lib.stride_tricks.sliding_window_view(stream, T + 1)[::S][:n]
    return np.ascontiguousarray(windows)


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
    if max_sequences is not None and max_sequences < 1:
        raise LeadingTermsError(f"--max-sequences must be >= 1, got {max_sequences}")
    eligible = list(docs) if pack_stream else [d for d in docs if len(d) >= T + 1]
    is_val = split_by_document(len(eligible), val_fraction, seed)
    parts = [[d for d, v in zip(eligible, is_val, strict=True) if v == flag] for flag in (False, True)]
    build = (lambda ds: pack(ds, T, stride)) if pack_stream else (lambda ds: truncate(ds, T))
    train, val = build(parts[0]), build(parts[1])
    cap_train = len(train) if max_sequences is None else max_sequences
    cap_val = len(val) if max_sequences is None else math.ceil(max_sequences * val_fraction / (1 - val_fraction))
    return SequenceSet(
        train=train[:cap_train],
        val=val[:cap_val] if val_fraction > 0 else None,
        n_train_docs=len(parts[0]),
        n_val_docs=len(parts[1]),
        n_train_capped=max(0, len(train) - cap_train),
        n_val_capped=max(0, len(val) - cap_val),
    )
