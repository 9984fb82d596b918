"""Corpus statistics for a pretrained model: its own tokenizer, the top-K tokens, cached.

The corpus (any :class:`~leadingterms.corpus.sources.SourceConfig`) is tokenized with the model's
tokenizer by the corpus pipeline (``tokenizer = "hf:<model folder>"``, so ids are the model's ids),
cut into sequences by the rule of docs/theory.md §7.1 (documents with >= seq_len+1 tokens, truncated
to their first seq_len+1 tokens; ``max_documents`` caps the documents read), and the basis is computed with
``compute_basis(tokens, V, top_k=K)``: tokens outside the K most frequent become one
``<other>`` token, the statistics are those of the corpus over that K+1 vocabulary.

Everything compared is restricted to the K kept tokens, i.e. the ``<other>`` row and column are
dropped *after* the products are formed: ``value = (Φ̄ᵀB̄ᵀ)[:K, :K]`` (the sum over the
intermediate next token includes ``<other>``), ``Q̄[:K, :K]`` (M = B̄ᵀB̄Φ̄ over K+1 tokens),
``B̄[:K, :K]``, ``Φ̄[:K, :K]``. Row/col i of every matrix is model token ``token_ids[i]``
(decreasing corpus frequency).

Cache: ``CACHE/<tokenizer fingerprint>-<corpus hash>-T<seq_len>/`` holds the token store and
``K<K>/stats.safetensors`` + ``stats.json``; the key is the tokenizer fingerprint (sha256 of its
``tokenizer.json`` serialisation), the source hash (its settings and the path, size and mtime of the
files it reads), seq_len and K.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from leadingterms.cache import reuse
from leadingterms.corpus.sources import SourceConfig, source_fields
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import load_tensors, save_tensors, write_json

STATS_NAMES = ("B_bar", "Phi_bar", "Q_bar", "value")


@dataclass
class TopKStats:
    """The docs/theory.md §2 statistics over the K kept tokens (float64); row/col i = model token
    ``token_ids[i]``."""

    B_bar: Tensor  # (K, K) row = current token, col = next token
    Phi_bar: Tensor  # (K, K) row = next token, col = context token
    Q_bar: Tensor  # (K, K) row = query token, col = key token
    value: Tensor  # (K, K) (Φ̄ᵀB̄ᵀ)[:K,:K] row = context token, col = residual direction
    token_ids: list[int]  # (K,) model ids in matrix order
    tokens: list[str]  # (K,) token strings
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def K(self) -> int:
        return len(self.token_ids)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """sha256 (16 hex) of a fast tokenizer's full serialisation (vocab, merges, normaliser, ...)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise LeadingTermsError("the model's tokenizer has no fast (tokenizers) version; save a tokenizer.json")
    return hashlib.sha256(backend.to_str().encode("utf-8")).hexdigest()[:16]


def save_stats(out_dir: str | os.PathLike[str], stats: TopKStats, stem: str = "basis") -> None:
    """``out_dir/<stem>.safetensors`` (B_bar, Phi_bar, Q_bar, value; K×K) + ``<stem>.json`` (token_ids, ...)."""
    out = Path(out_dir)
    save_tensors(out / f"{stem}.safetensors", {n: getattr(stats, n) for n in STATS_NAMES}, stats.meta)
    write_json(out / f"{stem}.json", {"token_ids": stats.token_ids, "tokens": stats.tokens, **stats.meta})


def load_stats(out_dir: str | os.PathLike[str], stem: str = "basis") -> TopKStats:
    from leadingterms.persist import read_json

    out = Path(out_dir)
    tensors, meta = load_tensors(out / f"{stem}.safetensors", what="top-K statistics")
    info = read_json(out / f"{stem}.json", what="top-K statistics metadata")
    missing = [n for n in STATS_NAMES if n not in tensors]
    if missing or not isinstance(info, dict) or "token_ids" not in info:
        raise LeadingTermsError(f"top-K statistics in {out} are incomplete (missing {missing or 'token_ids'})")
    return TopKStats(**{n: tensors[n] for n in STATS_NAMES}, token_ids=[int(i) for i in info["token_ids"]],
                     tokens=[str(t) for t in info.get("tokens", [])], meta=meta)


def stats_memory_bytes(K: int) -> int:
    """Rough peak of the basis computation at top-K: about 12 dense (K+1)² float64 matrices."""
    return 12 * (K + 1) ** 2 * 8


def source_hash(source: SourceConfig) -> str:
    """16 hex digits identifying a corpus source (settings and file identities)."""
    return hashlib.sha256(json.dumps(source.identity(), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _build_store(folder: Path, source: SourceConfig, seq_len: int, store_dir: Path) -> Any:
    """Tokenize the corpus with the tokenizer in ``folder`` (docs/theory.md §7.1 sequences) -> TokenStore."""
    from leadingterms.corpus.pipeline import CorpusConfig, fingerprint, run_corpus
    from leadingterms.corpus.store import META_FILE
    from leadingterms.persist import read_json

    cfg = CorpusConfig(**source_fields(source), tokenizer=f"hf:{folder}", seq_len=seq_len, out=str(store_dir))
    try:  # the cache's own store of other inputs (e.g. the model folder was rewritten) is replaced, not refused
        old = read_json(store_dir / META_FILE) if (store_dir / META_FILE).is_file() else None
    except LeadingTermsError:
        old = None
    cfg.force = isinstance(old, dict) and old.get("fingerprint") != fingerprint(cfg)
    return run_corpus(cfg).store


def corpus_stats(folder: Path, tokenizer: Any, source: SourceConfig, seq_len: int, K: int,
                 cache_dir: str | os.PathLike[str], *, progress: bool = True) -> TopKStats:
    """Top-K statistics of the corpus ``source`` (sequences of ``seq_len``) under the tokenizer of ``folder``
    (from the cache if present)."""
    from leadingterms.basis import compute_basis
    from leadingterms.budget import check_memory

    n_vocab = len(tokenizer)
    if K < 2:
        raise LeadingTermsError(f"--top-k must be >= 2, got {K}")
    if K > n_vocab:
        raise LeadingTermsError(f"--top-k {K} is larger than the tokenizer's vocabulary ({n_vocab} tokens)")
    fp = tokenizer_fingerprint(tokenizer)
    root = Path(cache_dir) / f"{fp}-{source_hash(source)}-T{seq_len}"
    kdir = root / f"K{K}"
    cached = reuse(kdir / "stats.json", {"K": K, "tokenizer_fingerprint": fp}, lambda: load_stats(kdir, "stats"))
    if cached is not None:
        return cached
    check_memory(stats_memory_bytes(K), f"the top-{K} statistics",
                 "lower --top-k (memory grows as K²)")
    store = _build_store(folder, source, seq_len, root / "store")  # reuses a matching store
    tokens = store.tokens
    distinct = int(len(torch.unique(torch.from_numpy(tokens.astype("int64")))))
    if K > distinct:
        raise LeadingTermsError(
            f"--top-k {K} is larger than the {distinct} distinct tokens in the corpus; lower --top-k or add text"
        )
    basis = compute_basis(tokens, store.V, top_k=K, progress=progress)
    raw_ids = basis.meta.get("token_ids")
    if raw_ids is None:  # K >= V: nothing was remapped, every token is kept
        token_ids = list(range(store.V))
    else:
        token_ids = [int(i) for i in raw_ids]
        if len(token_ids) != K + 1 or token_ids[K] != -1:
            raise LeadingTermsError("basis top-K layout unexpected (token_ids must end with <other> = -1)")
    keep = slice(0, K)
    value = basis.value_direction()[keep, keep]
    stats = TopKStats(
        B_bar=basis.B_bar[keep, keep].double().contiguous(),
        Phi_bar=basis.Phi_bar[keep, keep].double().contiguous(),
        Q_bar=basis.Q_bar[keep, keep].double().contiguous(),
        value=value.double().contiguous(),
        token_ids=token_ids[:K],
        tokens=[store.vocab[i] for i in token_ids[:K]],
        meta={
            "tokenizer_fingerprint": fp,
            "corpus": source_fields(source),
            "corpus_hash": source_hash(source),
            "store_content_hash": store.content_hash,
            "N": store.N,
            "T": store.T,
            "V": store.V,
            "K": K,
            "other_dropped": "matrices are the K x K block of the (K+1)-token statistics; products formed first",
        },
    )
    save_stats(kdir, stats, "stats")
    return stats
