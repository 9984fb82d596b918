"""Tokenizers of the corpus stage: ``word``, ``bpe`` (docs/theory.md §7.1) and ``hf:<name or path>``.

Every tokenizer maps documents (strings) to int64 id arrays. The id ``-1`` marks an
out-of-vocabulary token (only the word tokenizer without ``<unk>`` produces it; the pipeline
drops such documents, the paper's filter).

Word tokenizer (docs/theory.md §7.1): lowercase; every maximal run of ``str.isalpha`` characters is one
token; every other character is its own token; the tokens ``' '`` and ``'\\n'`` are dropped
(``'\\t'``, ``'\\r'`` and every other character stay). Vocabulary = the K most frequent tokens,
ids in order of decreasing frequency, ties broken by first appearance. With ``unk=True`` the
token ``<unk>`` is appended *after* the K tokens (id K, V = K + 1), so the ids of the real
tokens are the same as without it. ``keep``: strings kept as one token (an extension, e.g.
WikiText's ``<unk>`` and ``@-@``); a kept ``<unk>`` in the vocabulary serves as the ``<unk>`` id.

A corpus is encoded as a stream (see :class:`CorpusTokenizer`): chunks of documents are encoded
by the pure function :func:`encode_chunk` (in any process) and absorbed in corpus order.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from leadingterms.corpus.store import TOKENIZER_FILE
from leadingterms.errors import LeadingTermsError, first_line
from leadingterms.persist import atomic_path
from leadingterms.validate import positive_int

UNK = "<unk>"
BPE_SPECIAL_TOKENS = ["<unk>", "<pad>", "<s>", "</s>"]
DEFAULT_WORD_VOCAB = 3000
DEFAULT_BPE_VOCAB = 10_000


# ----------------------------------------------------------------------------- word tokenizer


_ASCII_MAX, _BMP_MAX = 0x7F, 0xFFFF

#: Literal markers that corpora use as tokens (WikiText's ``<unk>`` and ``@-@``, GPT-style end of text);
#: the word tokenizer splits them unless kept (``--keep-tokens``), and notes when a corpus holds them.
KNOWN_MARKERS = ("<unk>", "@-@", "@,@", "@.@", "<|endoftext|>")


def check_keep_tokens(keep: Iterable[str] | None, name: str = "keep_tokens") -> tuple[str, ...]:
    """Kept strings, lowercased (the tokenizer lowercases the text first), without repeats; one-line error
    for an empty string or one holding whitespace."""
    out: list[str] = []
    for k in keep or ():
        if not isinstance(k, str) or not k or any(ch.isspace() for ch in k):
            raise LeadingTermsError(f"--{name.replace('_', '-')}: a kept string must be non-empty text without "
                                    f"spaces, got {k!r}")
        if k.lower() not in out:
            out.append(k.lower())
    return tuple(out)


@functools.lru_cache(maxsize=8)
def _word_pattern(max_code_point: int, keep: tuple[str, ...] = ()) -> re.Pattern[str]:
    """``<kept strings> | [<every isalpha code point <= max_code_point>]+ | [^ \\n]``, the letter class
    built from ``str.isalpha`` itself, so exact for text whose code points are all <= max_code_point.

    Three domains (ASCII, BMP, all of unicode): ``re`` tests a BMP-only class with a bitmap but
    scans a class with astral ranges linearly, so the narrowest class that covers the text is
    used. (``[^\\W\\d_]`` is *not* isalpha: it also matches e.g. '²' and '½'.) Kept strings are
    tried first, longest first, wherever a token starts; one that ends in a letter must not be
    followed by a letter (``unk`` does not cut ``unknown``).
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(max_code_point + 1):
        if chr(cp).isalpha():
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    cls = "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
    kept = [re.escape(k) + (f"(?![{cls}])" if k[-1].isalpha() else "")
            for k in sorted(keep, key=len, reverse=True)]
    return re.compile("|".join([*kept, f"[{cls}]+", "[^ \\n]"]))


def _lower_tokens(low: str, keep: tuple[str, ...] = ()) -> list[str]:
    """Word tokens of already-lowercased text."""
    if low.isascii():
        limit = _ASCII_MAX
    elif max(low) <= "\uffff":
        limit = _BMP_MAX
    else:
        limit = sys.maxunicode
    return _word_pattern(limit, keep).findall(low)


def word_tokens(text: str, keep: tuple[str, ...] = ()) -> list[str]:
    """Word tokens of ``text`` (lowercased), in order (docs/theory.md §7.1); ``keep``: strings kept whole
    (lowercase, see :func:`check_keep_tokens`)."""
    return _lower_tokens(text.lower(), keep)


def build_word_vocab(token_docs: Iterable[Sequence[str]], K: int | None) -> tuple[list[str], Counter[str]]:
    """The K most frequent tokens (all if K is None), ids by decreasing count, ties by first appearance.

    Returns (vocab, counts). ``Counter`` keeps insertion (= first-appearance) order and
    ``sorted`` is stable, so equal counts keep first-appearance order.
    """
    counts: Counter[str] = Counter(itertools.chain.from_iterable(token_docs))
    ordered = sorted(counts.items(), key=lambda kv: -kv[1])
    if K is not None:
        ordered = ordered[:K]
    return [tok for tok, _ in ordered], counts


@dataclass
class EncodedChunk:
    """A chunk of documents, encoded: ``ids`` (n_tokens,) uint32 of every document in order,
    ``lengths`` (n_docs,) int64 tokens per document.

    Word tokenizer: ``ids`` are chunk-local type ids, ``types`` the chunk's distinct tokens in order
    of first appearance and ``counts`` (n_types,) their occurrences; ``markers``: occurrences of
    :data:`KNOWN_MARKERS` that are not kept. Other tokenizers: ``ids`` are final ids.
    """

    ids: np.ndarray
    lengths: np.ndarray
    types: list[str] | None = None
    counts: np.ndarray | None = None
    markers: dict[str, int] = field(default_factory=dict)


#: Characters of a document tokenized at a time: a longer one (a corpus on one line, like text8) is cut
#: before a space or line break, which the word tokenizer drops, so its tokens are those of the whole.
SEGMENT_CHARS = 1 << 20


def _segments(low: str) -> Iterator[str]:
    """``low`` in pieces of about :data:`SEGMENT_CHARS` characters, each cut just before a ' ' or '\\n' (a piece
    runs on to the next such character where there is none in its second half)."""
    start, n = 0, len(low)
    while n - start > SEGMENT_CHARS:
        half, end = start + SEGMENT_CHARS // 2, start + SEGMENT_CHARS
        cut = max(low.rfind(" ", half, end), low.rfind("\n", half, end))
        if cut < 0:
            found = [j for j in (low.find(" ", end), low.find("\n", end)) if j >= 0]
            if not found:
                break
            cut = min(found)
        yield low[start:cut]
        start = cut
    yield low[start:]


def encode_word_chunk(docs: Sequence[str], keep: tuple[str, ...] = ()) -> EncodedChunk:
    """Tokenize a chunk of documents with the word tokenizer into chunk-local type ids."""
    lengths = np.empty(len(docs), dtype=np.int64)
    watch = [m for m in KNOWN_MARKERS if m not in keep]
    markers = dict.fromkeys(watch, 0)
    # each token -> the position of its first occurrence (C-level passes, a segment at a time); then
    # positions -> dense ids
    index: dict[str, int] = {}
    firsts: list[np.ndarray] = []
    n_tok = 0
    for i, doc in enumerate(docs):
        low = doc.lower()
        start = n_tok
        for segment in _segments(low):
            toks = _lower_tokens(segment, keep)
            firsts.append(np.fromiter(map(index.setdefault, toks, range(n_tok, n_tok + len(toks))),
                                      dtype=np.int64, count=len(toks)))
            n_tok += len(toks)
        lengths[i] = n_tok - start
        for m in watch:
            if m[0] in low:
                markers[m] += low.count(m)
    first = np.concatenate(firsts) if firsts else np.empty(0, dtype=np.int64)
    positions = np.fromiter(index.values(), dtype=np.int64, count=len(index))  # increasing: insertion order
    dense = np.empty(n_tok, dtype=np.uint32)
    dense[positions] = np.arange(len(positions), dtype=np.uint32)
    ids = dense[first]
    counts = np.bincount(ids, minlength=len(positions)).astype(np.int64)
    return EncodedChunk(ids, lengths, list(index), counts, {m: n for m, n in markers.items() if n})


class WordCounts:
    """The vocabulary pass of the word tokenizer: every distinct token with a global type id in order of
    first appearance in the corpus, and its count. Chunks must be added in corpus order: each
    chunk lists its types in first-appearance order, so appending the new ones keeps the
    global first-appearance order (and equal counts stay ordered by it)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self._counts = np.zeros(1024, dtype=np.int64)
        self.markers: Counter[str] = Counter()

    @property
    def n_types(self) -> int:
        return len(self.index)

    @property
    def counts(self) -> np.ndarray:
        """(n_types,) int64 occurrences by type id."""
        return self._counts[: self.n_types]

    def add(self, chunk: EncodedChunk) -> np.ndarray:
        """Count a chunk -> its tokens as global type ids (n_tokens,) uint32."""
        assert chunk.types is not None and chunk.counts is not None
        setdefault, index = self.index.setdefault, self.index
        gid = np.fromiter((setdefault(t, len(index)) for t in chunk.types), dtype=np.int64,
                          count=len(chunk.types))
        if self.n_types > len(self._counts):
            self._counts = np.concatenate([self._counts, np.zeros(max(self.n_types, len(self._counts)),
                                                                  dtype=np.int64)])
        self._counts[gid] += chunk.counts  # a chunk's types are distinct
        self.markers.update(chunk.markers)
        return gid.astype(np.uint32)[chunk.ids]

    def types(self) -> list[str]:
        """Type strings by type id."""
        return list(self.index)


class CorpusTokenizer(Protocol):
    """What the pipeline needs from a tokenizer.

    A corpus is encoded as a stream: ``prepare`` (a pass over the documents when the tokenizer is
    trained on them), then chunks encoded by :func:`encode_chunk` with ``chunk_spec()`` (in any
    process), then ``absorb`` of each chunk *in corpus order* (raw ids), then ``finish`` -> a
    look-up table raw id -> final id (−1: out of vocabulary), or None when raw ids are final.
    """

    kind: str
    notes: list[str]  # what the caller should tell the user (e.g. a vocabulary smaller than asked)

    @property
    def vocab(self) -> list[str]: ...  # token strings in id order

    @property
    def unk_id(self) -> int | None: ...

    def prepare(self, docs: Iterable[str]) -> None: ...

    def chunk_spec(self) -> tuple[Any, ...]: ...

    def absorb(self, chunk: EncodedChunk) -> np.ndarray: ...

    def finish(self) -> np.ndarray | None: ...

    def fit_encode(self, docs: Sequence[str]) -> list[np.ndarray]: ...  # train if needed; int64 ids, -1 = OOV

    def encode_docs(self, docs: Sequence[str]) -> list[np.ndarray]: ...

    def settings(self) -> dict[str, Any]: ...

    def save(self, folder: Path) -> None: ...  # its files into a new build folder (store.publish moves them)


def encode_chunk(docs: Sequence[str], spec: tuple[Any, ...]) -> EncodedChunk:
    """Encode one chunk of documents as the tokenizer described by ``spec`` (``chunk_spec()``) would;
    a pure function of its arguments, run in worker processes."""
    if spec[0] == "word":
        return encode_word_chunk(docs, spec[1])
    encs = encode_batch(_backend_from_json(spec[1]), docs)
    lengths = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
    flat = itertools.chain.from_iterable(e.ids for e in encs)
    ids = np.fromiter(flat, dtype=np.uint32, count=int(lengths.sum()))
    return EncodedChunk(ids, lengths)


def encode_batch(tok: Any, docs: Sequence[str]) -> list[Any]:
    """``tok.encode_batch(docs)`` of a ``tokenizers.Tokenizer``; its errors (e.g. a WordLevel model without an
    unk token meeting an unknown word) as one line."""
    try:
        return list(tok.encode_batch(list(docs)))
    except Exception as exc:  # tokenizers raises a bare Exception
        raise LeadingTermsError(f"the tokenizer cannot encode this corpus: {first_line(exc)}") from None


def split_ids(ids: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Concatenated ids -> one int64 array per document."""
    return np.split(ids.astype(np.int64), np.cumsum(lengths)[:-1]) if len(lengths) else []


def _fit_encode(tok: CorpusTokenizer, docs: Sequence[str]) -> list[np.ndarray]:
    """The streaming protocol on documents in memory (one chunk)."""
    tok.prepare(docs)
    chunk = encode_chunk(docs, tok.chunk_spec())
    raw = tok.absorb(chunk)
    lut = tok.finish()
    return split_ids(raw if lut is None else lut[raw], chunk.lengths)


class WordTokenizer:
    """The word tokenizer of docs/theory.md §7.1 (its vocabulary is built from the corpus as it is encoded).

    ``keep``: strings kept whole (e.g. ``<unk>``, ``@-@``), an extension of §7.1. With ``unk`` and a
    kept ``<unk>`` among the K most frequent tokens, out-of-vocabulary tokens map to the corpus's own
    ``<unk>`` (no second ``<unk>`` is appended).
    """

    kind = "word"

    def __init__(self, vocab_size: int | None = None, unk: bool = False, vocab: list[str] | None = None,
                 keep: Iterable[str] | None = None):
        self.vocab_size = vocab_size
        self.unk = unk
        self.keep = check_keep_tokens(keep)
        self._vocab: list[str] = list(vocab) if vocab is not None else []
        self._index: dict[str, int] = {t: i for i, t in enumerate(self._vocab)}
        self.n_types = 0  # distinct tokens seen while encoding the corpus
        self.notes: list[str] = []
        self._counts = WordCounts()

    @property
    def vocab(self) -> list[str]:
        return self._vocab

    @property
    def unk_id(self) -> int | None:
        return self._index.get(UNK) if self.unk else None

    def prepare(self, docs: Iterable[str]) -> None:
        self._counts = WordCounts()

    def chunk_spec(self) -> tuple[Any, ...]:
        return ("word", self.keep)

    def absorb(self, chunk: EncodedChunk) -> np.ndarray:
        return self._counts.add(chunk)

    def finish(self) -> np.ndarray:
        """Build the vocabulary from the counts -> lut (n_types,) int32 type id -> token id (−1 = OOV)."""
        counts, types = self._counts.counts, self._counts.types()
        self.n_types = len(types)
        K = DEFAULT_WORD_VOCAB if self.vocab_size is None else self.vocab_size
        if K > len(types) and self.vocab_size is not None:
            self.notes.append(f"--vocab-size {K} is larger than the {len(types)} distinct tokens; "
                              f"using all {len(types)}")
        order = np.lexsort((np.arange(len(types)), -counts))[:K]  # decreasing count, ties by first appearance
        vocab = [types[i] for i in order]
        lut = np.full(len(types), -1, dtype=np.int32)
        lut[order] = np.arange(len(order))
        if self.unk:
            if UNK in self.keep and UNK in vocab:
                own = vocab.index(UNK)
                self.notes.append(f"out-of-vocabulary tokens map to the corpus's own {UNK} (id {own})")
            else:
                vocab.append(UNK)
            lut[lut < 0] = vocab.index(UNK)
        found = {m: n for m, n in self._counts.markers.items() if n}
        if found:
            listed = ", ".join(f"{n:,} × {m!r}" for m, n in found.items())
            self.notes.append(f"the corpus holds literal markers ({listed}) that the word tokenizer splits into "
                              f"pieces; --keep-tokens {' '.join(repr(m) for m in found)} keeps them whole")
        self._vocab = vocab
        self._index = {t: i for i, t in enumerate(vocab)}
        return lut

    def fit_encode(self, docs: Sequence[str]) -> list[np.ndarray]:
        """Build the vocabulary from ``docs`` and encode them (one tokenization pass)."""
        return _fit_encode(self, docs)

    def _encode_tokens(self, toks: list[list[str]]) -> list[np.ndarray]:
        missing = itertools.repeat(self._index[UNK] if self.unk else -1)
        get = self._index.get
        return [np.array(list(map(get, ts, missing)), dtype=np.int64) for ts in toks]

    def encode_docs(self, docs: Sequence[str]) -> list[np.ndarray]:
        return self._encode_tokens([word_tokens(d, self.keep) for d in docs])

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.encode_docs([text])[0]]

    def settings(self) -> dict[str, Any]:
        unk_id = self.unk_id
        position = None
        if self.unk:
            position = "last (id V-1)" if unk_id == len(self._vocab) - 1 else f"the corpus's own (id {unk_id})"
        return {"name": "word", "vocab_size": self.vocab_size, "unk": self.unk, "unk_position": position,
                "keep_tokens": list(self.keep)}

    def save(self, folder: Path) -> None:  # the vocabulary lives in corpus.json
        pass


# ----------------------------------------------------------------------------- HF tokenizers


def _vocab_of(tok: Any) -> list[str]:
    """Token strings by id of a ``tokenizers.Tokenizer`` (ids with no token become ``<unused:i>``)."""
    table = tok.get_vocab(with_added_tokens=True)
    V = max(table.values()) + 1 if table else 0
    vocab = [f"<unused:{i}>" for i in range(V)]
    for t, i in table.items():
        vocab[i] = t
    return vocab


class BackendTokenizer:
    """A ``tokenizers.Tokenizer``: trained here (``bpe``) or pretrained (``hf:NAME``)."""

    def __init__(self, kind: str, settings: dict[str, Any], tokenizer: Any = None, vocab_size: int | None = None):
        self.kind = kind
        self._settings = settings
        self.tok = tokenizer
        self.vocab_size = vocab_size
        self._vocab: list[str] = [] if tokenizer is None else _vocab_of(tokenizer)
        self.notes: list[str] = []

    @property
    def vocab(self) -> list[str]:
        return self._vocab

    @property
    def unk_id(self) -> int | None:
        model = self.tok.model
        unk = getattr(model, "unk_token", None)
        return None if unk is None else self.tok.token_to_id(unk)

    def prepare(self, docs: Iterable[str]) -> None:
        """Train the BPE model on the documents (one pass); nothing for a pretrained tokenizer."""
        if self.kind == "bpe":
            self._train(docs)

    def chunk_spec(self) -> tuple[Any, ...]:
        return ("backend", self.tok.to_str())

    def absorb(self, chunk: EncodedChunk) -> np.ndarray:
        return chunk.ids

    def finish(self) -> None:
        return None

    def fit_encode(self, docs: Sequence[str]) -> list[np.ndarray]:
        return _fit_encode(self, docs)

    def _train(self, docs: Iterable[str]) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

        K = DEFAULT_BPE_VOCAB if self.vocab_size is None else self.vocab_size
        if K < len(BPE_SPECIAL_TOKENS):
            n = len(BPE_SPECIAL_TOKENS)
            raise LeadingTermsError(f"--vocab-size {K} is too small for BPE (it holds {n} special tokens)")
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
        trainer = trainers.BpeTrainer(vocab_size=K, special_tokens=BPE_SPECIAL_TOKENS,  # type: ignore[call-arg]
                                      show_progress=False)
        tok.train_from_iterator(docs, trainer=trainer)
        tok.post_processor = processors.TemplateProcessing(  # type: ignore[assignment,call-arg]
            single="<s> $A </s>",
            special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
        )
        self.tok = tok
        self._vocab = _vocab_of(tok)
        if self.vocab_size is not None and len(self._vocab) < K:
            self.notes.append(f"--vocab-size {K} is larger than the {len(self._vocab)} BPE tokens this corpus "
                              f"supports; using {len(self._vocab)}")

    def encode_docs(self, docs: Sequence[str]) -> list[np.ndarray]:
        from leadingterms.progress import bar

        out: list[np.ndarray] = []
        step = 4096
        for i in bar(range(0, len(docs), step), total=-(-len(docs) // step), desc="tokenize", unit="batch"):
            out.extend(np.asarray(e.ids, dtype=np.int64) for e in encode_batch(self.tok, docs[i:i + step]))
        return out

    def encode(self, text: str) -> list[int]:
        return list(encode_batch(self.tok, [text])[0].ids)

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def save(self, folder: Path) -> None:
        with atomic_path(folder / TOKENIZER_FILE) as tmp:
            self.tok.save(str(tmp))


_FROM_JSON: dict[str, Any] = {}


def _backend_from_json(spec: str) -> Any:
    """A ``tokenizers.Tokenizer`` from its JSON serialisation (kept per process: chunks share it)."""
    from tokenizers import Tokenizer

    key = hashlib.sha256(spec.encode()).hexdigest()
    if key not in _FROM_JSON:
        _FROM_JSON.clear()
        _FROM_JSON[key] = Tokenizer.from_str(spec)
    return _FROM_JSON[key]


def _load_pretrained(name: str) -> Any:
    """A ``tokenizers.Tokenizer`` from a tokenizer.json file, a local folder or a hub name."""
    from tokenizers import Tokenizer

    p = Path(name)
    if p.suffix == ".json" or p.is_file():
        if not p.is_file():
            raise LeadingTermsError(f"tokenizer file not found: {p}")
        try:
            return Tokenizer.from_file(str(p))
        except Exception as exc:
            raise LeadingTermsError(f"cannot read tokenizer {p}: {first_line(exc)}") from None
    try:
        from transformers import AutoTokenizer
    except ImportError:  # pragma: no cover - transformers is an optional extra
        raise LeadingTermsError("hf:NAME tokenizers need transformers (pip install 'leadingterms[hf]')") from None
    try:
        tok = AutoTokenizer.from_pretrained(name, use_fast=True, trust_remote_code=False)
    except Exception as exc:
        where = "folder" if p.exists() else "name (the Hugging Face hub may be unreachable)"
        raise LeadingTermsError(f"cannot load tokenizer {name!r} by {where}: {first_line(exc)}") from None
    if not getattr(tok, "is_fast", False):
        raise LeadingTermsError(f"tokenizer {name!r} has no fast (tokenizers) version; save it as tokenizer.json")
    return tok.backend_tokenizer


def check_tokenizer_spec(spec: str) -> str:
    """``word``, ``bpe`` or ``hf:<name or path>``; one-line error otherwise."""
    if not (spec in ("word", "bpe") or (isinstance(spec, str) and spec.startswith("hf:") and len(spec) > 3)):
        raise LeadingTermsError(f"unknown tokenizer {spec!r}; use word, bpe or hf:<name or path>")
    return spec


def make_tokenizer(spec: str, vocab_size: int | None = None, unk: bool = False,
                   keep: Iterable[str] | None = None) -> CorpusTokenizer:
    """``word`` | ``bpe`` | ``hf:<name, folder or tokenizer.json>``; ``keep``: word only (kept strings)."""
    check_tokenizer_spec(spec)
    if vocab_size is not None:
        positive_int(vocab_size, "vocab_size")
    if spec == "word":
        return WordTokenizer(vocab_size, unk, keep=keep)
    if spec == "bpe":
        return BackendTokenizer("bpe", {"name": "bpe", "vocab_size": vocab_size,
                                        "special_tokens": BPE_SPECIAL_TOKENS, "pre_tokenizer": "Whitespace",
                                        "template": "<s> $A </s>"}, vocab_size=vocab_size)
    tok = BackendTokenizer("hf", {"name": spec}, _load_pretrained(spec[3:]))
    if vocab_size is not None:
        tok.notes.append("--vocab-size is ignored for a pretrained hf: tokenizer")
    return tok


def load_tokenizer(store_dir: str | os.PathLike[str]) -> WordTokenizer | BackendTokenizer:
    """The tokenizer a token store was built with (ids identical to the store's)."""
    from leadingterms.corpus.store import load_store

    store = load_store(Path(store_dir))
    settings = store.meta.get("tokenizer") or {}
    if settings.get("name", "word") == "word":
        return WordTokenizer(settings.get("vocab_size"), bool(settings.get("unk")), vocab=store.vocab,
                             keep=settings.get("keep_tokens"))
    f = store.path / TOKENIZER_FILE
    if not f.is_file():
        raise LeadingTermsError(f"token store {store.path} lacks {TOKENIZER_FILE}")
    kind = "bpe" if settings.get("name") == "bpe" else "hf"
    return BackendTokenizer(kind, settings, _load_pretrained(str(f)))
