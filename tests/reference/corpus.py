"""The corpus stage on documents in memory, written from docs/theory.md §7.1 with plain loops (the
pipeline before streaming; independent of the package): word tokens, vocabulary, the OOV and
length filters, the seeded split by document, truncation or packing, the caps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reference.words import naive_counts, naive_word_tokens

UNK = "<unk>"


@dataclass
class Reference:
    vocab: list[str]
    train: np.ndarray  # (N, T+1)
    val: np.ndarray | None
    counts: dict[str, int]  # corpus.json "counts" entries the reference knows


def eot_stories(text: str) -> list[str]:
    """TinyStories: stories end at lines holding exactly '<|endoftext|>'; text after the last one is an
    unterminated story and is not read; stories are stripped, empty ones skipped."""
    stories, current = [], []
    for line in text.split("\n"):
        if line == "<|endoftext|>":
            stories.append("\n".join(current).strip())
            current = []
        else:
            current.append(line)
    return [s for s in stories if s]


def rows_of(docs: list[list[int]], T: int, pack: bool, stride: int | None) -> list[list[int]]:
    if not pack:
        return [d[: T + 1] for d in docs if len(d) >= T + 1]
    stream = [t for d in docs for t in d]
    S = stride or T + 1
    out, start = [], 0
    while start + T + 1 <= len(stream):
        out.append(stream[start: start + T + 1])
        start += S
    return out


def reference_corpus(docs: list[str], *, K: int = 3000, T: int, unk: bool = False, keep: tuple[str, ...] = (),
                     pack: bool = False, stride: int | None = None, max_sequences: int | None = None,
                     val_fraction: float = 0.0, seed: int = 0) -> Reference:
    toks = [naive_word_tokens(d, keep) for d in docs]
    ordered, _ = naive_counts(toks)
    vocab = ordered[:K]
    if unk and not (UNK in keep and UNK in vocab):
        vocab = vocab + [UNK]
    index = {t: i for i, t in enumerate(vocab)}
    ids, oov = [], []
    for ts in toks:
        row = [index.get(t, index[UNK] if unk else -1) for t in ts]
        ids.append(row)
        oov.append(any(i < 0 for i in row))
    in_vocab = [d for d, bad in zip(ids, oov, strict=True) if not bad]
    eligible = in_vocab if pack else [d for d in in_vocab if len(d) >= T + 1]
    n = len(eligible)
    is_val = [False] * n
    if val_fraction > 0 and n:
        n_val = max(1, int(round(val_fraction * n)))
        if n_val >= n:
            raise ValueError("the split leaves no training document")
        for i in np.random.default_rng(seed).permutation(n)[:n_val]:
            is_val[int(i)] = True
    train = rows_of([d for d, v in zip(eligible, is_val, strict=True) if not v], T, pack, stride)
    val = rows_of([d for d, v in zip(eligible, is_val, strict=True) if v], T, pack, stride)
    n_train_all = len(train)
    if max_sequences is not None:
        train = train[:max_sequences]
        val = val[: math.ceil(max_sequences * val_fraction / (1 - val_fraction))]
    counts = {"documents_read": len(docs), "documents_dropped_oov": sum(oov),
              "documents_dropped_short": 0 if pack else len(in_vocab) - len(eligible),
              "documents_kept": n, "val_documents": sum(is_val), "tokens_read": sum(len(t) for t in toks),
              "sequences": len(train), "sequences_capped": n_train_all - len(train)}
    as_array = lambda rows: np.array(rows, dtype=np.int64).reshape(-1, T + 1)  # noqa: E731
    return Reference(vocab, as_array(train), as_array(val) if val_fraction > 0 else None, counts)
