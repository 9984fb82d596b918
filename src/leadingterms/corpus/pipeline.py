"""The corpus stage: source -> documents -> tokens -> sequences -> token store, streamed.

``run_corpus(CorpusConfig(..., out=DIR))`` writes the token rows (``DIR/tokens.npy``, or shards
``tokens-00000.npy``, ... of bounded size), ``DIR/corpus.json`` (vocab, source, tokenizer
settings, T, counts, shards, content hash, the input fingerprint and, for the synthetic corpus,
``planted``), the validation rows with a validation split, and ``tokenizer.json`` for bpe/hf
tokenizers. A store whose fingerprint matches the inputs and settings is reused unless ``force``.

The corpus is never held in memory: documents are read a chunk at a time, tokenized (in this
process or on Dask workers, ``--workers``/``--scheduler``; the output is the same bit for bit)
and passed through the three streaming passes of :mod:`leadingterms.corpus.ingest`; memory holds
a few chunks, the vocabulary counts and about 20 bytes per document.

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
from leadingterms.budget import check_disk
from leadingterms.cache import reuse
from leadingterms.config import check_config, option
from leadingterms.corpus import synthetic
from leadingterms.corpus.ingest import RawCorpus, encode_corpus, part_rows, scan_corpus, write_sequences
from leadingterms.corpus.sequences import caps, split_by_document
from leadingterms.corpus.sources import SourceConfig, absolute_if_exists, open_documents, source_fields
from leadingterms.corpus.store import (
    DEFAULT_SHARD_BYTES,
    META_FILE,
    StoreWriter,
    TokenStore,
    build_folder,
    files_hash,
    is_store_file,
    load_store,
    publish,
    store_meta,
    token_dtype,
)
from leadingterms.corpus.tokenizers import CorpusTokenizer, check_keep_tokens, check_tokenizer_spec, make_tokenizer
from leadingterms.distributed import ParallelConfig, open_engine
from leadingterms.errors import LeadingTermsError
from leadingterms.locks import new_output
from leadingterms.persist import disk_full_error, is_disk_full, read_json
from leadingterms.validate import fraction, nonnegative_int, out_folder, positive_int, refuse_foreign

PIPELINE_VERSION = 3  # 3: empty documents skipped in every source; absolute paths in the fingerprint
TOP_TOKENS = 10
#: Characters of text per tokenization task.
DEFAULT_CHUNK_CHARS = 1 << 20
#: Settings that change how the store is built, not what it holds (left out of the fingerprint).
_NOT_CONTENT = ("force", "out", "workers", "scheduler", "chunk_chars", "shard_bytes")


#: The largest vocabulary a store holds: its ids are at most uint32.
MAX_VOCAB = 2**32 - 1


def vocab_size(value: Any, name: str) -> int:
    """K: a positive integer whose ids (and the word tokenizer's ``<unk>``, id K) fit a store's uint32."""
    if positive_int(value, name) > MAX_VOCAB:
        raise LeadingTermsError(f"--vocab-size must be at most 2^32 - 1 (a store's ids are uint32), got {value!r}")
    return int(value)


@dataclass(kw_only=True)
class CorpusConfig(SourceConfig, ParallelConfig):
    """``leadingterms corpus``: a corpus source (:class:`SourceConfig`) -> tokenizer -> sequences -> ``out``."""

    tokenizer: str = option("word", help="word (docs/theory.md §7.1), bpe (trained here), or "
                            "hf:<hub name, folder or tokenizer.json>", metavar="word|bpe|hf:NAME",
                            check=lambda v, n: check_tokenizer_spec(v), group="tokenizer")
    vocab_size: int | None = option(None, help="K, the vocabulary size (default 3000 for word, 10000 for bpe)",
                                    metavar="K", check=vocab_size, group="tokenizer")
    unk: bool = option(False, help="word: map out-of-vocabulary tokens to <unk> (last id) instead of dropping "
                       "the document", group="tokenizer")
    keep_tokens: list[str] = option(help="word: strings kept as one token, separated by spaces (e.g. '<unk>' "
                                    "'@-@' '@,@' for WikiText; docs/theory.md §7.1)", metavar="STRING",
                                    nargs="+", check=lambda v, n: check_keep_tokens(v, n), group="tokenizer",
                                    default_factory=list)
    seq_len: int = option(64, help="T; rows hold T+1 tokens", metavar="T", check=positive_int, group="sequences")
    pack: bool = option(False, help="pack the token stream into windows instead of one truncated sequence per "
                        "document", group="sequences")
    stride: int | None = option(None, help="with --pack: window start spacing (default T+1)", metavar="S",
                                check=positive_int, group="sequences")
    max_sequences: int | None = option(None, help="keep at most N training sequences", metavar="N",
                                       check=positive_int, group="sequences")
    val_fraction: float = option(0.0, help="share of documents held out for validation (val_tokens.npy)",
                                 metavar="F", check=fraction, group="sequences")
    seed: int = option(0, help="seed of the validation split", check=nonnegative_int, group="sequences")
    out: str = option("corpus", help="token store folder to create", metavar="DIR")
    force: bool = option(False, help="rebuild even if DIR holds a store built from the same inputs")
    chunk_chars: int = option(DEFAULT_CHUNK_CHARS, help="characters of text per tokenization task", cli=False,
                              check=positive_int)
    shard_bytes: int = option(DEFAULT_SHARD_BYTES, help="largest token shard file (bytes)", cli=False,
                              check=positive_int)

    def check(self) -> None:
        SourceConfig.check(self)
        if self.unk and self.tokenizer != "word":
            raise LeadingTermsError("--unk applies to the word tokenizer only (bpe and hf have their own <unk>)")
        if self.keep_tokens and self.tokenizer != "word":
            raise LeadingTermsError("--keep-tokens applies to the word tokenizer only")
        if self.stride is not None and not self.pack:
            raise LeadingTermsError("--stride needs --pack")


@dataclass
class CorpusResult:
    """What :func:`run_corpus` returns: the store, whether an existing one was reused, and notes."""

    store: TokenStore
    reused: bool
    notes: list[str] = field(default_factory=list)


def _settings(cfg: CorpusConfig) -> dict[str, Any]:
    """The settings that decide a store's content (``keep_tokens`` only when given; paths made absolute)."""
    out = {k: v for k, v in {**asdict(cfg), **source_fields(cfg)}.items() if k not in _NOT_CONTENT}
    if cfg.tokenizer.startswith("hf:"):
        out["tokenizer"] = f"hf:{absolute_if_exists(cfg.tokenizer[3:])}"
    if not out["keep_tokens"]:
        del out["keep_tokens"]
    return out


def fingerprint(cfg: CorpusConfig) -> str:
    """Hash of every setting and the identity of the inputs (path, size, mtime; never ``force``/``out`` or
    the engine)."""
    ident: dict[str, Any] = {"source": cfg.identity()}
    if cfg.tokenizer.startswith("hf:") and Path(cfg.tokenizer[3:]).exists():
        from leadingterms.corpus.sources import tree_identity

        ident["tokenizer"] = tree_identity(Path(cfg.tokenizer[3:]))
    blob = json.dumps({"settings": _settings(cfg), "inputs": ident, "pipeline": PIPELINE_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_corpus(cfg: CorpusConfig) -> CorpusResult:
    """Build the store in ``cfg.out`` (or reuse a matching one). See the module docstring for the rules.

    Nothing in ``cfg.out`` changes until the new store is complete; a failure leaves it as it was."""
    check_config(cfg)
    out = out_folder(cfg.out)
    fp = fingerprint(cfg)
    notes: list[str] = []
    reused = reuse(out / META_FILE, {"fingerprint": fp}, lambda: load_store(out), force=cfg.force, notes=notes)
    if reused is not None:
        return CorpusResult(reused, True, notes)
    claim = lambda: claim_store(out, cfg, fp)  # noqa: E731
    claim()  # before reading the source; again once the lock is held
    stream = open_documents(cfg)
    with new_output(out, what="token store", claim=claim):
        remove_stale_builds(out)
        try:
            return _build(cfg, out, stream, notes)
        except Exception as exc:
            if is_disk_full(exc):
                raise disk_full_error(out) from None
            raise


def claim_store(out: Path, cfg: CorpusConfig, fp: str) -> None:
    """The overwrite policy of a store folder: ``out`` may be new, hold a store with the fingerprint ``fp``
    (reused), a broken store (rebuilt) or only a store's own files (an interrupted build); a store of
    other inputs or settings, or a folder holding other files, is written only with ``--force``."""
    if cfg.force or not out.is_dir():
        return
    if (out / META_FILE).is_file():
        try:
            meta = read_json(out / META_FILE)
        except LeadingTermsError:
            return
        if isinstance(meta, dict) and meta.get("fingerprint") != fp:
            why = _difference(meta, cfg)
            raise LeadingTermsError(f"the token store in {out} was made from other inputs ({why}); pass --force "
                                    "to replace it, or choose another --out")
        return
    refuse_foreign(out, "a token store", lambda p: is_store_file(p.name))


def _difference(meta: dict[str, Any], cfg: CorpusConfig) -> str:
    """What differs between the store's recorded ``meta`` and ``cfg``: the first setting, else the version
    of the pipeline, else the input files."""
    recorded = meta.get("config")
    old: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    new = json.loads(json.dumps(_settings(cfg), default=str))
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            return f"{k} {old.get(k)!r} there, {new.get(k)!r} now"
    if meta.get("pipeline") != PIPELINE_VERSION:
        return f"a corpus pipeline of version {meta.get('pipeline', 'before 3')} there, {PIPELINE_VERSION} now"
    return "the source files' path, size or modification time changed"


def remove_stale_builds(out: Path) -> None:
    """Remove the build folders of interrupted runs into ``out`` (call holding ``out``'s lock)."""
    import shutil

    for p in out.parent.glob(f".{out.name}.build-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _build(cfg: CorpusConfig, out: Path, stream: Any, notes: list[str]) -> CorpusResult:
    """Tokenize, filter and write the store into ``out`` (holding its lock)."""
    T = cfg.seq_len
    tok: CorpusTokenizer = make_tokenizer(cfg.tokenizer, cfg.vocab_size, cfg.unk, cfg.keep_tokens)
    with build_folder(out) as build:
        tok.prepare(stream)  # bpe: one pass to train it
        raw = RawCorpus(build)
        with open_engine(cfg, warm=("leadingterms.corpus.tokenizers",)) as engine:
            encode_corpus(stream, tok, engine, raw, cfg.chunk_chars)
        lut = tok.finish()
        notes += tok.notes
        V = len(tok.vocab)
        scan = scan_corpus(raw, lut, V)
        meta, part = _plan(cfg, raw, scan, tok, stream)
        counts = meta["counts"]
        rows = {"tokens": counts["sequences"], "val_tokens": counts["val_sequences"] if cfg.val_fraction else None}
        item = np.dtype(token_dtype(V)).itemsize
        check_disk(out, (rows["tokens"] + (rows["val_tokens"] or 0)) * (T + 1) * item, "the token store")
        writer = StoreWriter(build, V, T, rows, cfg.shard_bytes)
        try:
            write_sequences(raw, lut, part, T, pack=cfg.pack, stride=cfg.stride, writer=writer)
            shards = writer.close()
        except BaseException:
            writer.abort()
            raise
        raw.path.unlink()
        chash = files_hash(build, tok.vocab, shards, T + 1)
        tok.save(build)
        publish(build, out, store_meta(meta, tok.vocab, T, shards, chash))
    return CorpusResult(load_store(out), False, notes)


def _plan(cfg: CorpusConfig, raw: RawCorpus, scan: Any, tok: CorpusTokenizer, stream: Any
          ) -> tuple[dict[str, Any], np.ndarray]:
    """The filters and the split -> (corpus.json fields, ``part`` (n_docs,) int8: 0 train, 1 val, −1 out).

    One-line errors when nothing is left."""
    T, lengths, has_oov = cfg.seq_len, raw.lengths, scan.has_oov
    n_docs = raw.n_docs
    if n_docs == 0:
        src = stream.source
        raise LeadingTermsError(f"{src.get('kind')} {src.get('path') or src.get('name')} holds no documents")
    in_vocab = ~has_oov
    eligible = in_vocab if cfg.pack else in_vocab & (lengths >= T + 1)
    n_short = 0 if cfg.pack else int((in_vocab & (lengths < T + 1)).sum())
    if not in_vocab.any():
        raise LeadingTermsError(f"every one of the {n_docs} documents holds an out-of-vocabulary token; "
                                f"raise --vocab-size or use --unk")
    is_val = split_by_document(int(eligible.sum()), cfg.val_fraction, cfg.seed)
    part = np.full(n_docs, -1, dtype=np.int8)
    part[eligible] = is_val
    n_rows = part_rows(lengths, part, T, cfg.pack, cfg.stride)
    cap_train, cap_val = caps(cfg.max_sequences, cfg.val_fraction)
    n_train = n_rows[0] if cap_train is None else min(n_rows[0], cap_train)
    n_val = n_rows[1] if cap_val is None else min(n_rows[1], cap_val)
    if n_train == 0:
        if cfg.pack:
            total = int(lengths[in_vocab].sum())
            raise LeadingTermsError(f"the {int(in_vocab.sum())} documents hold {total} tokens in all, "
                                    f"fewer than T+1 = {T + 1}; lower --seq-len")
        longest = int(lengths[in_vocab].max())
        raise LeadingTermsError(f"no document has T+1 = {T + 1} tokens ({int(in_vocab.sum())} documents, "
                                f"the longest has {longest}); lower --seq-len or use --pack")
    counts, V = scan.counts, len(tok.vocab)
    n_tokens = raw.n_tokens
    unk = tok.unk_id
    n_unk = int(counts[unk]) if unk is not None and unk < V else 0
    order = np.argsort(-counts, kind="stable")[:TOP_TOKENS]
    n_val_docs = int((part == 1).sum())
    meta: dict[str, Any] = {
        "source": stream.source,
        "tokenizer": tok.settings(),
        "seq_len": T,
        "sequences": {"mode": "pack" if cfg.pack else "truncate", "stride": cfg.stride if cfg.pack else None,
                      "max_sequences": cfg.max_sequences, "val_fraction": cfg.val_fraction, "seed": cfg.seed},
        "counts": {
            "documents_read": n_docs,
            "documents_kept": int(eligible.sum()),
            "documents_dropped_oov": int(has_oov.sum()),
            "documents_dropped_short": n_short,
            "documents_unterminated": stream.n_unterminated,
            "train_documents": int(eligible.sum()) - n_val_docs,
            "val_documents": n_val_docs,
            "tokens_read": n_tokens,
            "distinct_tokens": getattr(tok, "n_types", None),
            "sequences": n_train,
            "val_sequences": n_val if cfg.val_fraction > 0 else 0,
            "sequences_capped": n_rows[0] - n_train,
            "longest_document": int(lengths.max()) if n_docs else 0,
        },
        "vocab_coverage": 1.0 - (scan.n_oov + n_unk) / n_tokens if n_tokens else 0.0,
        "top_tokens": [[tok.vocab[i], int(counts[i])] for i in order if counts[i] > 0],
        "notes": stream.notes,
        "fingerprint": fingerprint(cfg),
        "pipeline": PIPELINE_VERSION,
        "config": _settings(cfg),
        "leadingterms_version": __version__,
    }
    if stream.source["kind"] == "synthetic":
        meta["planted"] = synthetic.planted_associations()
    return meta, part


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
    lines += [f"note: {note}" for note in m.get("notes") or []]  # the source's: unterminated text, empty documents
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
