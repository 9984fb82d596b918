"""Tokenizers of the corpus stage: ``word``, ``bpe`` (docs/theory.md §7.1) and ``hf:<name or path>``.

Every tokenizer maps documents (strings) to int64 id arrays. The id ``-1`` marks an
out-of-vocabulary token (only the word tokenizer without ``<unk>`` produces it; the pipeline
drops such documents, the paper's filter).

Word tokenizer (docs/theory.md §7.1): lowercase; every maximal run of ``str.isalpha`` characters is one
token; every other character is its own token; the tokens ``' '`` and ``'\\n'`` are dropped
(``'\\t'``, ``'\\r'`` and every other character stay). Vocabulary = the K most frequent tokens,
ids in order of decreasing frequency, ties broken by first appearance. With ``unk=True`` the
token ``<unk>`` is appended *after* the K tokens (id K, V = K + 1), so the ids of the real
tokens are the same as without it.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from leadingterms.errors import LeadingTermsError, first_line
from leadingterms.persist import atomic_path
from leadingterms.validate import positive_int

UNK = "<unk>"
BPE_SPECIAL_TOKENS = ["<unk>", "<pad>", "<s>", "</s>"]
DEFAULT_WORD_VOCAB = 3000
DEFAULT_BPE_VOCAB = 10_000
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_DIR = "tokenizer"  # save_pretrained folder, for HF tokenizers without a tokenizer.json


# ----------------------------------------------------------------------------- word tokenizer


_ASCII_MAX, _BMP_MAX = 0x7F, 0xFFFF


@functools.lru_cache(maxsize=3)
def _word_pattern(max_code_point: int) -> re.Pattern[str]:
    """``[<every isalpha code point <= max_code_point>]+ | [^ \\n]``, built from ``str.isalpha``
    itself, so exact for text whose code points are all <= max_code_point.

    Three domains (ASCII, BMP, all of unicode): ``re`` tests a BMP-only class with a bitmap but
    scans a class with astral ranges linearly, so the narrowest class that covers the text is
    used. (``[^\\W\\d_]`` is *not* isalpha: it also matches e.g. '²' and '½'.)
    """
    ranges: list[tuple[int, int]] = []
    for cp in range(max_code_point + 1):
        if chr(cp).isalpha():
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    cls = "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)
    return re.compile(f"[{cls}]+|[^ \\n]")


def word_tokens(text: str) -> list[str]:
    """Word tokens of ``text`` (lowercased), in order (docs/theory.md §7.1)."""
    low = text.lower()
    if low.isascii():
        limit = _ASCII_MAX
    elif max(low) <= "\uffff":
        limit = _BMP_MAX
    else:
        limit = sys.maxunicode
    return _word_pattern(limit).findall(low)


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


class CorpusTokenizer(Protocol):
    """What the pipeline needs from a tokenizer."""

    kind: str
    notes: list[str]  # what the caller should tell the user (e.g. a vocabulary smaller than asked)

    @property
    def vocab(self) -> list[str]: ...  # token strings in id order

    @property
    def unk_id(self) -> int | None: ...

    def fit_encode(self, docs: Sequence[str]) -> list[np.ndarray]: ...  # train if needed; int64 ids, -1 = OOV

    def encode_docs(self, docs: Sequence[str]) -> list[np.ndarray]: ...

    def settings(self) -> dict[str, Any]: ...

    def save(self, out_dir: Path) -> None: ...


class WordTokenizer:
    """The word tokenizer of docs/theory.md §7.1. ``fit_encode`` builds the vocabulary from the documents."""

    kind = "word"

    def __init__(self, vocab_size: int | None = None, unk: bool = False, vocab: list[str] | None = None):
        self.vocab_size = vocab_size
        self.unk = unk
        self._vocab: list[str] = list(vocab) if vocab is not None else []
        self._index: dict[str, int] = {t: i for i, t in enumerate(self._vocab)}
        self.n_types = 0  # distinct tokens seen by fit_encode
        self.notes: list[str] = []

    @property
    def vocab(self) -> list[str]:
        return self._vocab

    @property
    def unk_id(self) -> int | None:
        return self._index.get(UNK) if self.unk else None

    def fit_encode(self, docs: Sequence[str]) -> list[np.ndarray]:
        """Build the vocabulary from ``docs`` and encode them (one tokenization pass)."""
        from leadingterms.progress import bar

        toks = [word_tokens(d) for d in bar(docs, total=len(docs), desc="tokenize", unit="doc")]
        K = DEFAULT_WORD_VOCAB if self.vocab_size is None else self.vocab_size
        vocab, _ = build_word_vocab(toks, None)
        self.n_types = len(vocab)
        if K > len(vocab):
            if self.vocab_size is not None:
                self.notes.append(f"--vocab-size {K} is larger than the {len(vocab)} distinct tokens; "
                                  f"using all {len(vocab)}")
        else:
            vocab = vocab[:K]
        if self.unk:
            vocab.append(UNK)
        self._vocab = vocab
        self._index = {t: i for i, t in enumerate(vocab)}
        return self._encode_tokens(toks)

    def _encode_tokens(self, toks: list[list[str]]) -> list[np.ndarray]:
        missing = itertools.repeat(self._index[UNK] if self.unk else -1)
        get = self._index.get
        return [np.array(list(map(get, ts, missing)), dtype=np.int64) for ts in toks]

    def encode_docs(self, docs: Sequence[str]) -> list[np.ndarray]:
        return self._encode_tokens([word_tokens(d) for d in docs])

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self.encode_docs([text])[0]]

    def settings(self) -> dict[str, Any]:
        return {"name": "word", "vocab_size": self.vocab_size, "unk": self.unk,
                "unk_position": "last (id V-1)" if self.unk else None}

    def save(self, out_dir: Path) -> None:  # the vocabulary lives in corpus.json
        _remove_saved(out_dir)


# ----------------------------------------------------------------------------- HF tokenizers


def _remove_saved(out_dir: Path) -> None:
    """Remove a tokenizer left by an earlier build in the same folder."""
    (out_dir / TOKENIZER_FILE).unlink(missing_ok=True)
    folder = out_dir / TOKENIZER_DIR
    if folder.is_dir():
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()


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

    def fit_encode(self, docs: Sequence[str]) -> list[np.ndarray]:
        if self.kind == "bpe":
            self._train(docs)
        return self.encode_docs(docs)

    def _train(self, docs: Sequence[str]) -> None:
        from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

        K = DEFAULT_BPE_VOCAB if self.vocab_size is None else self.vocab_size
        if K < len(BPE_SPECIAL_TOKENS):
            n = len(BPE_SPECIAL_TOKENS)
            raise LeadingTermsError(f"--vocab-size {K} is too small for BPE (it holds {n} special tokens)")
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
        trainer = trainers.BpeTrainer(vocab_size=K, special_tokens=BPE_SPECIAL_TOKENS,  # type: ignore[call-arg]
                                      show_progress=False)
        tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
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
            out.extend(np.asarray(e.ids, dtype=np.int64) for e in self.tok.encode_batch(list(docs[i:i + step])))
        return out

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text).ids)

    def settings(self) -> dict[str, Any]:
        return dict(self._settings)

    def save(self, out_dir: Path) -> None:
        _remove_saved(out_dir)
        with atomic_path(out_dir / TOKENIZER_FILE) as tmp:
            self.tok.save(str(tmp))


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


def make_tokenizer(spec: str, vocab_size: int | None = None, unk: bool = False) -> CorpusTokenizer:
    """``word`` | ``bpe`` | ``hf:<name, folder or tokenizer.json>``."""
    check_tokenizer_spec(spec)
    if vocab_size is not None:
        positive_int(vocab_size, "vocab_size")
    if spec == "word":
        return WordTokenizer(vocab_size, unk)
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
        return WordTokenizer(settings.get("vocab_size"), bool(settings.get("unk")), vocab=store.vocab)
    f = store.path / TOKENIZER_FILE
    if not f.is_file():
        raise LeadingTermsError(f"token store {store.path} lacks {TOKENIZER_FILE}")
    kind = "bpe" if settings.get("name") == "bpe" else "hf"
    return BackendTokenizer(kind, settings, _load_pretrained(str(f)))
