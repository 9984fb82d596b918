"""The streaming passes of the corpus stage, in bounded memory (docs/theory.md §7.1).

1. **Encode** (:func:`encode_corpus`): chunks of documents are tokenized by an engine
   (in-process or Dask workers, :mod:`leadingterms.distributed`) and absorbed *in corpus order*:
   the word tokenizer counts its tokens (global first-appearance order, so ties in the
   vocabulary are broken exactly as over the whole corpus at once). The raw ids go to a
   temporary file (:class:`RawCorpus`, 4 bytes per token); only the document lengths (8 bytes
   per document) and the counts stay in memory.
2. **Scan** (:func:`scan_corpus`): the raw ids mapped to the final vocabulary, a block of
   documents at a time -> which documents hold an out-of-vocabulary token, and the count of
   every id.
3. **Write** (:func:`write_sequences`): the eligible documents, split into train/validation by
   document, cut into rows (truncation or packing) and streamed into the store's shards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from leadingterms.corpus.sequences import RowBuilder, n_windows
from leadingterms.corpus.sources import DocumentStream
from leadingterms.corpus.store import StoreWriter
from leadingterms.corpus.tokenizers import CorpusTokenizer, encode_chunk
from leadingterms.distributed import Engine
from leadingterms.progress import meter

#: Token ids read from the raw file per block of the scan and write passes.
BLOCK_TOKENS = 1 << 20
RAW_FILE = "raw-ids.u32"


class RawCorpus:
    """The encoded documents, one after another, as uint32 raw ids in ``folder/raw-ids.u32``;
    ``lengths`` (n_docs,) int64 in memory."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / RAW_FILE
        self._file: Any = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._lengths: list[np.ndarray] = []
        self.lengths = np.zeros(0, dtype=np.int64)

    def append(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(ids, dtype=np.uint32).tobytes())
        self._lengths.append(np.asarray(lengths, dtype=np.int64))

    def close(self) -> None:
        self._file.close()
        self.lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, dtype=np.int64)
        self._lengths = []

    @property
    def n_docs(self) -> int:
        return len(self.lengths)

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    def blocks(self, lut: np.ndarray | None, block_tokens: int | None = None
               ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first document, ids (int32, through ``lut`` if given), lengths) of consecutive whole
        documents, about ``block_tokens`` (default :data:`BLOCK_TOKENS`) ids at a time, read
        sequentially from the file."""
        block_tokens = block_tokens or BLOCK_TOKENS
        ends = np.cumsum(self.lengths)
        with open(self.path, "rb") as f:
            d0, t0 = 0, 0
            while d0 < self.n_docs:
                d1 = max(d0 + 1, int(np.searchsorted(ends, t0 + block_tokens, side="right")))
                t1 = int(ends[d1 - 1])
                raw = np.fromfile(f, dtype=np.uint32, count=t1 - t0)
                ids = lut[raw] if lut is not None else raw.astype(np.int32)
                yield d0, ids, self.lengths[d0:d1]
                d0, t0 = d1, t1


def encode_corpus(stream: DocumentStream, tok: CorpusTokenizer, engine: Engine, raw: RawCorpus,
                  chunk_chars: int) -> None:
    """Pass 1: tokenize ``stream`` in chunks on ``engine``, absorb them in order into ``tok``, and
    write the raw ids to ``raw``. Progress: bytes of the file read (or documents)."""
    by_bytes = stream.size is not None
    progress = meter(total=stream.size, desc="corpus: tokenize", unit="B" if by_bytes else "doc",
                     unit_scale=by_bytes)
    try:
        for chunk in engine.map(encode_chunk, stream.chunks(chunk_chars), tok.chunk_spec()):
            raw.append(tok.absorb(chunk), chunk.lengths)
            progress.update(stream.position - progress.n if by_bytes else len(chunk.lengths))
    finally:
        progress.close()
        raw.close()


@dataclass
class Scan:
    """What the scan pass finds: ``has_oov`` (n_docs,) bool, ``counts`` (V,) int64 occurrences of each
    id over every document read, ``n_oov`` out-of-vocabulary occurrences."""

    has_oov: np.ndarray
    counts: np.ndarray
    n_oov: int


def scan_corpus(raw: RawCorpus, lut: np.ndarray | None, V: int) -> Scan:
    """Pass 2: per-document out-of-vocabulary flags (``lut`` gives −1) and id counts."""
    has_oov = np.zeros(raw.n_docs, dtype=bool)
    counts = np.zeros(V, dtype=np.int64)
    n_oov = 0
    for d0, ids, lengths in raw.blocks(lut):
        bad = ids < 0
        if bad.any():
            doc = np.repeat(np.arange(len(lengths)), lengths)
            has_oov[d0:d0 + len(lengths)] = np.bincount(doc[bad], minlength=len(lengths)) > 0
            n_oov += int(bad.sum())
            ids = ids[~bad]
        counts += np.bincount(ids, minlength=V)
    return Scan(has_oov, counts, n_oov)


def part_rows(lengths: np.ndarray, part: np.ndarray, T: int, pack: bool, stride: int | None) -> list[int]:
    """Rows each part (0 = train, 1 = validation) yields before any cap: its documents when truncating
    (every eligible document has >= T+1 tokens), else the windows of its token stream."""
    if not pack:
        return [int((part == p).sum()) for p in (0, 1)]
    return [n_windows(int(lengths[part == p].sum()), T, stride) for p in (0, 1)]


def write_sequences(raw: RawCorpus, lut: np.ndarray | None, part: np.ndarray, T: int, *, pack: bool,
                    stride: int | None, writer: StoreWriter) -> None:
    """Pass 3: rows of the documents of each part (``part`` (n_docs,) int8: 0 train, 1 validation,
    −1 left out), in document order, into ``writer`` (``tokens`` / ``val_tokens``), as many as the
    writer announced (the caps of --max-sequences)."""
    names = ("tokens", "val_tokens")
    builders = [RowBuilder(T, pack=pack, stride=stride) for _ in names]
    left = [writer.rows.get(name, 0) for name in names]  # rows still to write
    for d0, ids, lengths in raw.blocks(lut):
        if not any(left):
            break
        parts = part[d0:d0 + len(lengths)]
        for p, name in enumerate(names):
            if not left[p]:
                continue
            docs = parts == p
            if not docs.any():
                continue
            rows = builders[p].feed(ids[np.repeat(docs, lengths)], lengths[docs])[: left[p]]
            if len(rows):
                writer.write(name, rows)
                left[p] -= len(rows)
