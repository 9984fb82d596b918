"""The corpus stage: source -> documents -> tokens -> sequences -> token store.

``run_corpus(CorpusConfig(..., out=DIR))`` writes ``DIR/tokens.npy`` (N, T+1),
``out_dir/corpus.json`` (vocab, source, tokenizer settings, T, counts, content hash, the input
fingerprint and, for the synthetic corpus, ``planted``), ``val_tokens.npy`` with a validation
split, and ``tokenizer.json`` for bpe/hf tokenizers. A store whose fingerprint matches the
inputs and settings is reused unless ``force``.

Order of the filters (docs/theory.md §7.1): the vocabulary is built from every document read; documents
holding an out-of-vocabulary token are dropped (word tokenizer without ``<unk>``); of the rest,
those shorter than T+1 tokens are dropped (unless packing); the survivors are truncated to
T+1 tokens in document order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leadingterms import __version__
from leadingterms.cache import reuse
from leadingterms.config import check_config, option
from leadingterms.corpus import sequences as seqs
from leadingterms.corpus import synthetic
from leadingterms.corpus.sources import SourceConfig, read_documents
from leadingterms.corpus.store import META_FILE, TokenStore, load_store, write_store
from leadingterms.corpus.tokenizers import CorpusTokenizer, check_tokenizer_spec, make_tokenizer
from leadingterms.errors import LeadingTermsError
from leadingterms.validate import fraction, positive_int

PIPELINE_VERSION = 2
TOP_TOKENS = 10


@dataclass(kw_only=True)
class CorpusConfig(SourceConfig):
    """``leadingterms corpus``: a corpus source (:class:`SourceConfig`) -> tokenizer -> sequences -> ``out``."""

    tokenizer: str = option("word", help="word (docs/theory.md §7.1), bpe (trained here), or "
                            "hf:<hub name, folder or tokenizer.json>", metavar="word|bpe|hf:NAME",
                            check=lambda v, n: check_tokenizer_spec(v), group="tokenizer")
    vocab_size: int | None = option(None, help="K, the vocabulary size (default 3000 for word, 10000 for bpe)",
                                    metavar="K", check=positive_int, group="tokenizer")
    unk: bool = option(False, help="word: map out-of-vocabulary tokens to <unk> (last id) instead of dropping "
                       "the document", group="tokenizer")
    seq_len: int = option(64, help="T; rows hold T+1 tokens", metavar="T", check=positive_int, group="sequences")
    pack: bool = option(False, help="pack the token stream into windows instead of one truncated sequence per "
                        "document", group="sequences")
    stride: int | None = option(None, help="with --pack: window start spacing (default T+1)", metavar="S",
                                check=positive_int, group="sequences")
    max_sequences: int | None = option(None, help="keep at most N training sequences", metavar="N",
                                       check=positive_int, group="sequences")
    val_fraction: float = option(0.0, help="share of documents held out for validation (val_tokens.npy)",
                                 metavar="F", check=fraction, group="sequences")
    seed: int = option(0, help="seed of the validation split", group="sequences")
    out: str = option("corpus", help="token store folder to create", metavar="DIR")
    force: bool = option(False, help="rebuild even if DIR holds a store built from the same inputs")

    def check(self) -> None:
        SourceConfig.check(self)
        if self.unk and self.tokenizer != "word":
            raise LeadingTermsError("--unk applies to the word tokenizer only (bpe and hf have their own <unk>)")
        if self.stride is not None and not self.pack:
            raise LeadingTermsError("--stride needs --pack")


@dataclass
class CorpusResult:
    """What :func:`run_corpus` returns: the store, whether an existing one was reused, and notes."""

    store: TokenStore
    reused: bool
    notes: list[str] = field(default_factory=list)


def fingerprint(cfg: CorpusConfig) -> str:
    """Hash of every setting and the identity of the inputs (path, size, mtime; never ``force``/``out``)."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("force", "out")}
    ident: dict[str, Any] = {"source": cfg.identity()}
    if cfg.tokenizer.startswith("hf:") and Path(cfg.tokenizer[3:]).exists():
        from leadingterms.corpus.sources import tree_identity

        ident["tokenizer"] = tree_identity(Path(cfg.tokenizer[3:]))
    blob = json.dumps({"settings": settings, "inputs": ident, "pipeline": PIPELINE_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_corpus(cfg: CorpusConfig) -> CorpusResult:
    """Build the store in ``cfg.out`` (or reuse a matching one). See the module docstring for the rules."""
    check_config(cfg)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise LeadingTermsError(f"--out {out} exists and is not a folder")
    fp = fingerprint(cfg)
    notes: list[str] = []
    reused = reuse(out / META_FILE, {"fingerprint": fp}, lambda: load_store(out), force=cfg.force, notes=notes)
    if reused is not None:
        return CorpusResult(reused, True, notes)

    T = cfg.seq_len
    docs = read_documents(cfg)
    tok: CorpusTokenizer = make_tokenizer(cfg.tokenizer, cfg.vocab_size, cfg.unk)
    ids = tok.fit_encode(docs.texts)
    notes += tok.notes
    V = len(tok.vocab)
    lengths = np.array([len(d) for d in ids], dtype=np.int64)
    flat = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    oov = flat < 0
    has_oov = np.bincount(np.repeat(np.arange(len(ids)), lengths)[oov], minlength=len(ids)) > 0
    n_oov_occ = int(oov.sum())
    counts = np.bincount(flat[~oov], minlength=V)
    n_tokens = int(lengths.sum())
    n_unk_occ = int(counts[tok.unk_id]) if tok.unk_id is not None and tok.unk_id < V else 0
    in_vocab = [d for d, bad in zip(ids, has_oov, strict=True) if not bad]
    short = ~has_oov & (lengths < T + 1)
    n_short = 0 if cfg.pack else int(short.sum())

    if not in_vocab:
        raise LeadingTermsError(f"every one of the {len(ids)} documents holds an out-of-vocabulary token; "
                                f"raise --vocab-size or use --unk")
    result = seqs.make_sequences(in_vocab, T, pack_stream=cfg.pack, stride=cfg.stride,
                                 max_sequences=cfg.max_sequences, val_fraction=cfg.val_fraction, seed=cfg.seed)
    if len(result.train) == 0:
        longest = int(lengths[~has_oov].max()) if (~has_oov).any() else 0
        if cfg.pack:
            total = int(lengths[~has_oov].sum())
            raise LeadingTermsError(f"the {len(in_vocab)} documents hold {total} tokens in all, "
                                    f"fewer than T+1 = {T + 1}; lower --seq-len")
        raise LeadingTermsError(f"no document has T+1 = {T + 1} tokens ({len(in_vocab)} documents, "
                                f"the longest has {longest}); lower --seq-len or use --pack")

    order = np.argsort(-counts, kind="stable")[:TOP_TOKENS]
    n_kept = result.n_train_docs + result.n_val_docs
    meta: dict[str, Any] = {
        "source": docs.source,
        "tokenizer": tok.settings(),
        "seq_len": T,
        "sequences": {"mode": "pack" if cfg.pack else "truncate", "stride": cfg.stride if cfg.pack else None,
                      "max_sequences": cfg.max_sequences, "val_fraction": cfg.val_fraction, "seed": cfg.seed},
        "counts": {
            "documents_read": len(ids),
            "documents_kept": n_kept,
            "documents_dropped_oov": int(has_oov.sum()),
            "documents_dropped_short": n_short,
            "documents_unterminated": docs.n_unterminated,
            "train_documents": result.n_train_docs,
            "val_documents": result.n_val_docs,
            "tokens_read": n_tokens,
            "distinct_tokens": getattr(tok, "n_types", None),
            "sequences": int(len(result.train)),
            "val_sequences": 0 if result.val is None else int(len(result.val)),
            "sequences_capped": result.n_train_capped,
            "longest_document": int(lengths.max()) if len(lengths) else 0,
        },
        "vocab_coverage": 1.0 - (n_oov_occ + n_unk_occ) / n_tokens if n_tokens else 0.0,
        "top_tokens": [[tok.vocab[i], int(counts[i])] for i in order if counts[i] > 0],
        "notes": docs.notes,
        "fingerprint": fp,
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("force", "out")},
        "leadingterms_version": __version__,
    }
    if docs.source["kind"] == "synthetic":
        meta["planted"] = synthetic.planted_associations()
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # the store is incomplete until corpus.json is rewritten
    tok.save(out)
    store = write_store(out, result.train, tok.vocab, meta, val_tokens=result.val)
    return CorpusResult(store, False, notes)


def summary(store: TokenStore) -> str:
    """Human-readable summary of a store built by :func:`run_corpus` (several lines)."""
    m = store.meta
    c = m.get("counts", {})
    src = m.get("source", {})
    if src.get("kind") == "synthetic":
        where = f"synthetic stories (seed {src.get('seed')}, {src.get('n_docs')} documents)"
    else:
        where = f"{src.get('kind')} {src.get('path') or src.get('name')}"
    split = f", split by {src['split_by']}" if src.get("split_by") else ""
    tk = m.get("tokenizer", {})
    T = store.T
    drops = []
    if c.get("documents_dropped_short"):
        drops.append(f"{c['documents_dropped_short']:,} too short (< T+1 = {T + 1} tokens)")
    if c.get("documents_dropped_oov"):
        drops.append(f"{c['documents_dropped_oov']:,} with out-of-vocabulary tokens")
    dropped = c.get("documents_dropped_short", 0) + c.get("documents_dropped_oov", 0)
    lines = [
        f"source: {where}{split}",
        f"documents: {c.get('documents_read', 0):,} read, {c.get('documents_kept', 0):,} kept, {dropped:,} dropped"
        + (f" ({'; '.join(drops)})" if drops else ""),
    ]
    if c.get("documents_unterminated"):
        lines.append("note: the text after the last <|endoftext|> line (an unterminated document) was not read")
    distinct = f" of {c['distinct_tokens']:,} distinct" if c.get("distinct_tokens") else ""
    val = f" + {c.get('val_sequences', 0):,} validation" if store.val_tokens is not None else ""
    lines += [
        f"tokens: {c.get('tokens_read', 0):,} read; tokenizer {tk.get('name')}, "
        f"vocabulary V = {store.V:,}{distinct}, "
        f"coverage {100 * float(m.get('vocab_coverage', 0)):.2f}% of token occurrences",
        f"sequences: {store.N:,} train{val}"
        + f" of T+1 = {T + 1} tokens ({m.get('sequences', {}).get('mode', 'truncate')})"
        + (f", {c['sequences_capped']:,} left out by --max-sequences" if c.get("sequences_capped") else ""),
        "top tokens: " + ", ".join(f"{t!r} {n:,}" for t, n in m.get("top_tokens", [])),
        f"store: {store.path} ({store.tokens.dtype}, content hash {store.content_hash})",
    ]
    return "\n".join(lines)
