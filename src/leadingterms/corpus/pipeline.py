"""The corpus stage: source -> documents -> tokens -> sequences -> token store.

``build_corpus(CorpusConfig(...), out_dir)`` writes ``out_dir/tokens.npy`` (N, T+1),
``out_dir/corpus.json`` (vocab, source, tokenizer settings, T, counts, content hash, the input
fingerprint and, for the synthetic corpus, ``planted``), ``val_tokens.npy`` with a validation
split, and ``tokenizer.json`` for bpe/hf tokenizers. A store whose fingerprint matches the
inputs and settings is reused unless ``force``.

Order of the filters (SPEC §6): the vocabulary is built from every document read; documents
holding an out-of-vocabulary token are dropped (word tokenizer without ``<unk>``); of the rest,
those shorter than T+1 tokens are dropped (unless packing); the survivors are truncated to
T+1 tokens in document order.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leadingterms import __version__
from leadingterms.corpus import sequences as seqs
from leadingterms.corpus import sources, synthetic
from leadingterms.corpus.store import META_FILE, TokenStore, load_store, write_store
from leadingterms.corpus.tokenizers import CorpusTokenizer, make_tokenizer
from leadingterms.errors import LeadingTermsError

PIPELINE_VERSION = 1
TOP_TOKENS = 10


@dataclass
class CorpusConfig:
    """Settings of ``leadingterms corpus``. At most one source; none = the synthetic corpus."""

    text: str | None = None  # text file (.txt/.xz/.gz/.bz2)
    jsonl: str | None = None  # JSON Lines file
    dataset: str | None = None  # HF dataset name (or a local builder such as "json" with data_files)
    load_from_disk: str | None = None  # folder written by Dataset.save_to_disk
    dataset_config: str | None = None
    data_files: list[str] | None = None
    split: str = "train"
    text_field: str = "text"  # JSON Lines field / dataset column
    streaming: bool = False
    split_by: str = "auto"  # text files: auto | eot | blank | line
    max_documents: int | None = None
    synthetic_docs: int = synthetic.DEFAULT_DOCS
    synthetic_seed: int = 0
    tokenizer: str = "word"  # word | bpe | hf:<name or path>
    vocab_size: int | None = None  # K; None = 3000 (word), 10000 (bpe); ignored for hf
    unk: bool = False  # word: map OOV tokens to <unk> (id V-1) instead of dropping the document
    seq_len: int = 64  # T
    pack: bool = False
    stride: int | None = None  # packing stride, default T+1
    max_sequences: int | None = None
    val_fraction: float = 0.0
    seed: int = 0  # validation split
    force: bool = False  # rebuild even if the store matches

    def source_kind(self) -> str:
        given = [k for k in ("text", "jsonl", "dataset", "load_from_disk") if getattr(self, k)]
        if len(given) > 1:
            flags = " and ".join("--" + k.replace("_", "-") for k in given)
            raise LeadingTermsError(f"give one source, not {flags}")
        return given[0] if given else "synthetic"


@dataclass
class BuildResult:
    store: TokenStore
    reused: bool


def validate(cfg: CorpusConfig) -> None:
    """Check the settings before reading anything (one-line errors)."""
    cfg.source_kind()
    if cfg.seq_len < 1:
        raise LeadingTermsError(f"--seq-len must be >= 1, got {cfg.seq_len}")
    if cfg.vocab_size is not None and cfg.vocab_size < 1:
        raise LeadingTermsError(f"--vocab-size must be >= 1, got {cfg.vocab_size}")
    if not (cfg.tokenizer in ("word", "bpe") or (cfg.tokenizer.startswith("hf:") and len(cfg.tokenizer) > 3)):
        raise LeadingTermsError(f"unknown tokenizer {cfg.tokenizer!r}; use word, bpe or hf:<name or path>")
    if cfg.unk and cfg.tokenizer != "word":
        raise LeadingTermsError("--unk applies to the word tokenizer only (bpe and hf have their own <unk>)")
    if cfg.split_by not in sources.SPLIT_MODES:
        modes = ", ".join(sources.SPLIT_MODES)
        raise LeadingTermsError(f"unknown --split-by {cfg.split_by!r}; use one of {modes}")
    if cfg.stride is not None and (cfg.stride < 1 or not cfg.pack):
        raise LeadingTermsError("--stride needs --pack and must be >= 1")
    if cfg.max_sequences is not None and cfg.max_sequences < 1:
        raise LeadingTermsError(f"--max-sequences must be >= 1, got {cfg.max_sequences}")
    if cfg.max_documents is not None and cfg.max_documents < 1:
        raise LeadingTermsError(f"--max-documents must be >= 1, got {cfg.max_documents}")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise LeadingTermsError(f"--val-fraction must be in [0, 1), got {cfg.val_fraction}")
    if cfg.source_kind() == "synthetic" and cfg.synthetic_docs < 1:
        raise LeadingTermsError(f"--synthetic-docs must be >= 1, got {cfg.synthetic_docs}")


def fingerprint(cfg: CorpusConfig) -> str:
    """Hash of every setting and the identity of the inputs (path, size, mtime; never ``force``)."""
    settings = asdict(cfg)
    settings.pop("force")
    ident: dict[str, Any] = {}
    for key in ("text", "jsonl", "load_from_disk"):
        if getattr(cfg, key) and Path(getattr(cfg, key)).exists():
            ident[key] = sources.tree_identity(Path(getattr(cfg, key)))
    for f in cfg.data_files or []:
        if Path(f).exists():
            ident.setdefault("data_files", []).append(sources.tree_identity(Path(f)))
    if cfg.tokenizer.startswith("hf:") and Path(cfg.tokenizer[3:]).exists():
        ident["tokenizer"] = sources.tree_identity(Path(cfg.tokenizer[3:]))
    blob = json.dumps({"settings": settings, "inputs": ident, "pipeline": PIPELINE_VERSION,
                       "synthetic": synthetic.GENERATOR_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_documents(cfg: CorpusConfig) -> sources.Documents:
    kind = cfg.source_kind()
    if kind == "text":
        assert cfg.text is not None
        return sources.text_file_documents(cfg.text, cfg.split_by, cfg.max_documents)
    if kind == "jsonl":
        assert cfg.jsonl is not None
        return sources.jsonl_documents(cfg.jsonl, cfg.text_field, cfg.max_documents)
    if kind == "dataset":
        assert cfg.dataset is not None
        return sources.hf_documents(cfg.dataset, cfg.dataset_config, cfg.split, cfg.text_field, cfg.streaming,
                                    cfg.data_files, cfg.max_documents)
    if kind == "load_from_disk":
        assert cfg.load_from_disk is not None
        return sources.disk_documents(cfg.load_from_disk, cfg.split, cfg.text_field, cfg.max_documents)
    n = cfg.synthetic_docs if cfg.max_documents is None else min(cfg.synthetic_docs, cfg.max_documents)
    return sources.Documents(
        synthetic.generate_documents(n, cfg.synthetic_seed),
        {"kind": "synthetic", "n_docs": n, "seed": cfg.synthetic_seed,
         "generator_version": synthetic.GENERATOR_VERSION},
    )


def _try_reuse(cfg: CorpusConfig, out: Path, fp: str) -> TokenStore | None:
    if cfg.force or not (out / META_FILE).is_file():
        return None
    try:
        store = load_store(out)
    except LeadingTermsError:
        return None
    return store if store.meta.get("fingerprint") == fp else None


def build(cfg: CorpusConfig, out_dir: str | os.PathLike[str]) -> BuildResult:
    """Build the store (or reuse a matching one). See the module docstring for the rules."""
    validate(cfg)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LeadingTermsError(f"--out {out} exists and is not a folder")
    fp = fingerprint(cfg)
    reused = _try_reuse(cfg, out, fp)
    if reused is not None:
        return BuildResult(reused, True)

    T = cfg.seq_len
    docs = read_documents(cfg)
    tok: CorpusTokenizer = make_tokenizer(cfg.tokenizer, cfg.vocab_size, cfg.unk)
    ids = tok.fit_encode(docs.texts)
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
        "config": {k: v for k, v in asdict(cfg).items() if k != "force"},
        "leadingterms_version": __version__,
    }
    if docs.source["kind"] == "synthetic":
        meta["planted"] = synthetic.planted_associations()
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # the store is incomplete until corpus.json is rewritten
    tok.save(out)
    store = write_store(out, result.train, tok.vocab, meta, val_tokens=result.val)
    return BuildResult(store, False)


def build_corpus(cfg: CorpusConfig, out_dir: str | os.PathLike[str]) -> TokenStore:
    """Build (or reuse) the token store for ``cfg`` in ``out_dir`` and return it."""
    return build(cfg, out_dir).store


def summary(store: TokenStore) -> str:
    """Human-readable summary of a store built by :func:`build` (several lines)."""
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
