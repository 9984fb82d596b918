"""Corpus sources -> documents (strings, in source order), streamed.

:func:`open_documents` returns a :class:`DocumentStream`: each iteration reads the source afresh,
a block at a time (files are decompressed and decoded as a stream), so a pass over a corpus
holds one block and one document, never the whole text. :func:`read_documents` collects a
stream into a list (small corpora, the API of the other stages).

- text files (``.txt`` or compressed ``.xz``/``.gz``/``.bz2``), split into documents by lines
  holding only ``<|endoftext|>`` (TinyStories), by blank lines, or one per line
  (``split_by="auto"`` picks the first that applies, in that order);
- JSON Lines with a text field (optionally compressed);
- Hugging Face datasets: ``datasets.load_dataset(name, config, split=..., streaming=...)``
  (also local builders such as ``json`` with ``data_files``) and ``datasets.load_from_disk``;
- the embedded synthetic corpus (:mod:`leadingterms.corpus.synthetic`).
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import hashlib
import json
import lzma
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

from leadingterms.config import option
from leadingterms.corpus import synthetic
from leadingterms.errors import LeadingTermsError, first_line
from leadingterms.validate import nonnegative_int, positive_int

EOT = "<|endoftext|>"
SPLIT_MODES = ("auto", "eot", "blank", "line")
_EOT_LINE = re.compile(r"^[ \t\r]*<\|endoftext\|>[ \t\r]*$", re.M)
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")  # one or more blank lines separate documents
_CONTENT = re.compile(r"\S")  # a character that str.strip() keeps
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON's "\\ud800" escapes decode to these; UTF-8 cannot hold them
#: Bytes (decompressed) read from a file at a time.
BLOCK_BYTES = 1 << 20
_SNIFF_BYTES = 65536  # a NUL byte in the first 64 KiB marks a binary file


@dataclass
class Documents:
    """Documents read from a source. ``source`` describes it (recorded in corpus.json)."""

    texts: list[str]
    source: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # e.g. an unterminated trailing story dropped
    n_unterminated: int = 0


SOURCE_GROUP = "corpus source (at most one; none = the embedded synthetic stories)"


@dataclass(kw_only=True)
class SourceConfig:
    """Where documents come from: the same fields (and flags) for every command that reads a corpus.

    At most one of ``text``, ``jsonl``, ``dataset``, ``load_from_disk``; none = the embedded
    synthetic stories (``synthetic_docs`` of them, seeded by ``synthetic_seed``).
    """

    text: str | None = option(None, help="text file (.txt, .xz, .gz, .bz2); documents split by --split-by",
                              metavar="PATH", group=SOURCE_GROUP)
    jsonl: str | None = option(None, help="JSON Lines file, one document per line (field --text-field)",
                               metavar="PATH", group=SOURCE_GROUP)
    dataset: str | None = option(None, help="Hugging Face dataset (a datasets.load_dataset name or builder)",
                                 metavar="NAME", group=SOURCE_GROUP)
    load_from_disk: str | None = option(None, help="folder written by Dataset.save_to_disk", metavar="DIR",
                                        group=SOURCE_GROUP)
    dataset_config: str | None = option(None, help="dataset configuration name", metavar="NAME",
                                        group=SOURCE_GROUP)
    data_files: list[str] | None = option(None, help="data files for a --dataset builder such as json or text",
                                          metavar="FILE", nargs="+", group=SOURCE_GROUP)
    split: str = option("train", help="dataset split", group=SOURCE_GROUP)
    text_field: str = option("text", help="JSON Lines field / dataset column holding the text", metavar="NAME",
                             group=SOURCE_GROUP)
    streaming: bool = option(False, help="stream the --dataset (use with --max-documents)", group=SOURCE_GROUP)
    split_by: str = option("auto", help="text files: documents end at <|endoftext|> lines (eot), blank lines "
                           "(blank), every line (line), or the first that applies (auto)",
                           choices=SPLIT_MODES, group=SOURCE_GROUP)
    max_documents: int | None = option(None, help="read at most N documents", metavar="N", check=positive_int,
                                       group=SOURCE_GROUP)
    synthetic_docs: int = option(synthetic.DEFAULT_DOCS, help="number of synthetic stories (no source given)",
                                 metavar="N", check=positive_int, group=SOURCE_GROUP)
    synthetic_seed: int = option(0, help="seed of the synthetic stories", metavar="S", check=nonnegative_int,
                                 group=SOURCE_GROUP)

    def source_kind(self) -> str:
        """``text``, ``jsonl``, ``dataset``, ``load_from_disk`` or ``synthetic``."""
        given = [k for k in ("text", "jsonl", "dataset", "load_from_disk") if getattr(self, k)]
        if len(given) > 1:
            flags = " and ".join("--" + k.replace("_", "-") for k in given)
            raise LeadingTermsError(f"give one source, not {flags}")
        return given[0] if given else "synthetic"

    def check(self) -> None:
        """Options that only make sense with a dataset are refused without one."""
        kind = self.source_kind()
        if kind != "dataset":
            for name in ("data_files", "streaming", "dataset_config"):
                if getattr(self, name):
                    raise LeadingTermsError(f"--{name.replace('_', '-')} needs --dataset NAME")

    def identity(self) -> dict[str, Any]:
        """What identifies the input (settings, and path/size/mtime of the files read; content not read)."""
        ident: dict[str, Any] = source_fields(self)
        for key in ("text", "jsonl", "load_from_disk", "dataset"):
            value = getattr(self, key)
            if value and Path(value).exists():
                ident[f"{key}_identity"] = tree_identity(Path(value))
        ident["data_files_identity"] = [tree_identity(Path(f)) for f in self.data_files or [] if Path(f).exists()]
        if self.source_kind() == "synthetic":
            ident["generator_version"] = synthetic.GENERATOR_VERSION
        return ident


def source_fields(src: SourceConfig) -> dict[str, Any]:
    """The :class:`SourceConfig` fields of ``src`` (which may be any config extending it), the paths of
    files and folders that exist made absolute (``--text c.txt`` run from its folder names the same input
    as ``--text /data/c.txt``)."""
    from dataclasses import fields

    out = {f.name: getattr(src, f.name) for f in fields(SourceConfig)}
    for key in ("text", "jsonl", "load_from_disk", "dataset"):
        out[key] = absolute_if_exists(out[key])
    out["data_files"] = [absolute_if_exists(f) for f in out["data_files"] or []] or out["data_files"]
    return out


def absolute_if_exists(path: str | None) -> str | None:
    """``path`` made absolute when it names an existing file or folder (a hub name is kept as given)."""
    return str(Path(path).resolve()) if path and Path(path).exists() else path


class DocumentStream:
    """The documents of a source, read lazily in source order; iterate it once per pass.

    ``source`` describes the source (recorded in corpus.json). After an iteration that reached the
    end of the source, ``notes`` and ``n_unterminated`` describe what was left out. Each iteration
    opens the source again (``max_documents`` caps every iteration).
    """

    def __init__(self, read: Callable[[DocumentStream], Iterator[str]], source: dict[str, Any],
                 max_documents: int | None = None) -> None:
        self._read = read
        self.source = source
        self.max_documents = max_documents
        self.notes: list[str] = []
        self.n_unterminated = 0
        self.size: int | None = None  # bytes of the file read, when the source is one file
        self.position = 0  # bytes of it read so far

    def __iter__(self) -> Iterator[str]:
        self.notes, self.n_unterminated, self.position = [], 0, 0
        docs = self._read(self)
        try:
            yield from docs if self.max_documents is None else islice(docs, self.max_documents)
        finally:
            close = getattr(docs, "close", None)
            if close is not None:
                close()  # a capped pass closes the file it was reading

    def chunks(self, chunk_chars: int) -> Iterator[list[str]]:
        """Consecutive lists of documents of about ``chunk_chars`` characters (at least one document)."""
        chunk: list[str] = []
        size = 0
        for doc in self:
            chunk.append(doc)
            size += len(doc)
            if size >= chunk_chars:
                yield chunk
                chunk, size = [], 0
        if chunk:
            yield chunk


def open_documents(src: SourceConfig) -> DocumentStream:
    """A :class:`DocumentStream` over the source of ``src`` (nothing is read yet)."""
    kind = src.source_kind()
    if kind == "text":
        assert src.text is not None
        return text_file_stream(src.text, src.split_by, src.max_documents)
    if kind == "jsonl":
        assert src.jsonl is not None
        return jsonl_stream(src.jsonl, src.text_field, src.max_documents)
    if kind == "dataset":
        assert src.dataset is not None
        if is_saved_dataset(src.dataset):  # a save_to_disk folder given as --dataset
            return disk_stream(src.dataset, src.split, src.text_field, src.max_documents)
        return hf_stream(src.dataset, src.dataset_config, src.split, src.text_field, src.streaming,
                         src.data_files, src.max_documents)
    if kind == "load_from_disk":
        assert src.load_from_disk is not None
        return disk_stream(src.load_from_disk, src.split, src.text_field, src.max_documents)
    n = src.synthetic_docs if src.max_documents is None else min(src.synthetic_docs, src.max_documents)
    synthetic.iter_documents(n, src.synthetic_seed)  # checks n
    return DocumentStream(lambda _: synthetic.iter_documents(n, src.synthetic_seed),
                          {"kind": "synthetic", "n_docs": n, "seed": src.synthetic_seed,
                           "generator_version": synthetic.GENERATOR_VERSION})


def collect(stream: DocumentStream) -> Documents:
    """Every document of ``stream`` in a list."""
    texts = list(stream)
    return Documents(texts, stream.source, stream.notes, stream.n_unterminated)


def read_documents(src: SourceConfig) -> Documents:
    """The documents of a source, in source order (``max_documents`` caps them), in memory."""
    return collect(open_documents(src))


# ----------------------------------------------------------------------------- files


_MAGIC = {b"\xfd7zXZ\x00": "xz", b"\x1f\x8b": "gz", b"BZh": "bz2"}
_OPEN = {"xz": lzma.open, "gz": gzip.open, "bz2": bz2.open}
_DECOMPRESSION_ERRORS = (lzma.LZMAError, OSError, EOFError, ValueError)


#: Compressions recognised by their magic bytes but not read (the standard library has no decoder).
_UNREAD = {b"\x28\xb5\x2f\xfd": "zstd", b"\x04\x22\x4d\x18": "lz4", b"PK\x03\x04": "zip",
           b"7z\xbc\xaf\x27\x1c": "7z"}


def _compression(path: Path, head: bytes) -> str | None:
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    for magic, kind in _UNREAD.items():
        if head.startswith(magic):
            raise LeadingTermsError(f"{path} is {kind}-compressed, which is not read here; decompress it, or "
                                    "recompress it with xz, gzip or bzip2")
    ext = path.suffix.lower().lstrip(".")
    if ext in ("xz", "gz", "bz2"):
        raise LeadingTermsError(f"{path} has a .{ext} name but is not {ext}-compressed")
    return None


def _open_binary(p: Path, what: str) -> tuple[IO[bytes], IO[bytes], str | None]:
    """(the file's decompressed byte stream, the raw file under it, its compression by content)."""
    if not p.exists():
        raise LeadingTermsError(f"{what} not found: {p}")
    if p.is_dir():
        raise LeadingTermsError(f"{what} is a folder, not a file: {p}")
    if not p.is_file():
        raise LeadingTermsError(f"{what} {p} is not a regular file: a pipe or device cannot be read again, and "
                                "the corpus is read in two passes; save it to a file first")
    raw = open(p, "rb")  # noqa: SIM115 - closed with the stream
    try:
        kind = _compression(p, raw.read(6))
    except BaseException:
        raw.close()
        raise
    raw.seek(0)
    return (raw if kind is None else _OPEN[kind](raw, "rb")), raw, kind  # type: ignore[operator]


def text_blocks(path: str | os.PathLike[str], what: str = "text file", block_bytes: int | None = None,
                stream: DocumentStream | None = None) -> Iterator[str]:
    """The UTF-8 text of a file in blocks of about ``block_bytes`` (default :data:`BLOCK_BYTES`),
    decompressing xz/gz/bz2 as a stream. One-line errors for a missing, empty, corrupt or binary
    file, raised when met. ``stream``: its ``position`` follows the bytes of the file read."""
    p = Path(path)
    block_bytes = block_bytes or BLOCK_BYTES
    f, raw_file, kind = _open_binary(p, what)
    if stream is not None:
        stream.size = p.stat().st_size
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, first, content = 0, True, False
    with raw_file, f:
        while True:
            try:
                raw = f.read(block_bytes)
            except _DECOMPRESSION_ERRORS as exc:
                raise LeadingTermsError(f"{what} {p} is a corrupt {kind} file: {exc}") from None
            if stream is not None:
                stream.position = raw_file.tell()
            if offset < _SNIFF_BYTES and b"\x00" in raw[:_SNIFF_BYTES - offset]:
                raise LeadingTermsError(f"{what} {p} looks binary (it holds NUL bytes); expected UTF-8 text")
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as exc:
                at = offset - (len(exc.object) - len(raw)) + exc.start
                raise LeadingTermsError(f"{what} {p} is not UTF-8 text (invalid byte at offset {at})") from None
            if first and text:
                text = text.removeprefix("\ufeff")
                first = False
            offset += len(raw)
            content = content or _CONTENT.search(text) is not None
            if text:
                yield text
            if not raw:
                break
    if not content:
        raise LeadingTermsError(f"{what} {p} is empty")


def read_text(path: str | os.PathLike[str], what: str = "text file") -> str:
    """Whole file as UTF-8 text (see :func:`text_blocks`)."""
    return "".join(text_blocks(path, what))


def _last_cut(buf: str) -> int:
    """Index just after the last newline of ``buf`` that is followed by a character other than space,
    tab, CR or newline; 0 when there is none. No document separator (an EOT line, a blank line, a
    line break) straddles such a point, so the text before it splits as it would in the whole text."""
    end = len(buf)
    while True:
        j = buf.rfind("\n", 0, end)
        if j < 0:
            return 0
        if j + 1 < len(buf) and buf[j + 1] not in " \t\r\n":
            return j + 1
        end = j


def text_pieces(blocks: Iterable[str]) -> Iterator[str]:
    """Re-cut text blocks at safe points (:func:`_last_cut`); the pieces concatenate to the text.

    The text carried over holds no safe point but, maybe, one at its end (a final newline): each block is
    searched once, with the carried text's last character, so a text with no line break (text8) costs
    linear time, not quadratic."""
    carry: list[str] = []
    for block in blocks:
        tail = carry[-1][-1:] if carry else ""
        found = _last_cut(tail + block)
        if not found:
            carry.append(block)
            continue
        cut = found - len(tail)  # in block: 0 when the carried text ends with the newline
        yield "".join(carry) + block[:cut]
        carry = [block[cut:]] if cut < len(block) else []
    if carry:
        yield "".join(carry)


def detect_split_pieces(pieces: Iterable[str]) -> str:
    """:func:`detect_split` over text given in safe pieces (it stops at the first ``<|endoftext|>`` line)."""
    seen_content = armed = blank = False
    for piece in pieces:
        if _EOT_LINE.search(piece):
            return "eot"
        if blank:
            continue
        pos = 0
        if armed and _CONTENT.search(piece):
            blank = True
            continue
        first = _CONTENT.search(piece)
        for m in _BLANK_LINE.finditer(piece):
            if seen_content or (first is not None and first.start() < m.start()):
                armed, pos = True, m.end()
                break
        if armed and _CONTENT.search(piece, pos):
            blank = True
        seen_content = seen_content or first is not None
    return "blank" if blank else "line"


def detect_split(text: str) -> str:
    """``eot`` if a line holds only <|endoftext|>, else ``blank`` if there is a blank line between two
    non-blank ones, else ``line``."""
    return detect_split_pieces([text])


class _Splitter:
    """Splits text fed in safe pieces into documents (stripped, empty ones skipped)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.pending = ""
        self.separated = False  # at least one separator seen
        self.n_unterminated = 0

    def feed(self, piece: str) -> list[str]:
        if self.mode == "eot":
            parts = _EOT_LINE.split(piece)
        elif self.mode == "blank":
            parts = _BLANK_LINE.split(piece)
        else:
            parts = piece.split("\n")
        parts[0] = self.pending + parts[0]
        self.separated = self.separated or len(parts) > 1
        self.pending = parts[-1]
        return [s for s in (p.strip() for p in parts[:-1]) if s]

    def end(self) -> list[str]:
        """The last document; in ``eot`` mode text after the last separator is unterminated (dropped)."""
        last, self.pending = self.pending.strip(), ""
        if self.mode == "eot" and self.separated:
            self.n_unterminated = int(bool(last))
            return []
        return [last] if last else []


def split_documents(text: str, split_by: str = "auto") -> tuple[list[str], str, int]:
    """Split ``text`` into documents -> (documents, mode used, unterminated trailing documents dropped).

    ``eot``: documents end with a line that holds only ``<|endoftext|>``; text after the last
    such line is an unterminated (truncated) story and is dropped (counted in the third value).
    ``blank``: blank lines separate documents. ``line``: one document per non-empty line.
    Documents are stripped of surrounding whitespace; empty ones are skipped.
    """
    mode = _check_split(split_by)
    mode = detect_split(text) if mode == "auto" else mode
    splitter = _Splitter(mode)
    docs = splitter.feed(text) + splitter.end()
    return docs, mode, splitter.n_unterminated


def _check_split(split_by: str) -> str:
    if split_by not in SPLIT_MODES:
        raise LeadingTermsError(f"unknown --split-by {split_by!r}; use one of {', '.join(SPLIT_MODES)}")
    return split_by


def _file_identity(p: Path) -> dict[str, Any]:
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def text_file_stream(path: str | os.PathLike[str], split_by: str = "auto",
                     max_documents: int | None = None) -> DocumentStream:
    """The documents of a text file. ``auto`` first scans the text for the split mode (it stops at
    the first ``<|endoftext|>`` line, so a TinyStories file costs nothing extra)."""
    p = Path(path)
    _check_split(split_by)

    def read(stream: DocumentStream) -> Iterator[str]:
        mode = split_by
        if mode == "auto":
            mode = detect_split_pieces(text_pieces(text_blocks(p)))
        stream.source["split_by"] = mode
        splitter = _Splitter(mode)
        crlf = False
        for piece in text_pieces(text_blocks(p, stream=stream)):
            crlf = crlf or "\r\n" in piece
            yield from splitter.feed(piece)
        yield from splitter.end()
        if crlf:
            stream.notes.append("the text has Windows line endings (CRLF): the word tokenizer keeps each '\\r' as "
                                "a token (docs/theory.md §7.1); convert the file (e.g. dos2unix) to drop them")
        if splitter.n_unterminated:
            stream.n_unterminated = splitter.n_unterminated
            stream.notes.append(f"dropped the text after the last {EOT} line (an unterminated, truncated "
                                "document)")

    return DocumentStream(read, {"kind": "text", "path": str(p), "split_by": split_by}, max_documents)


def text_file_documents(path: str | os.PathLike[str], split_by: str = "auto",
                        max_documents: int | None = None) -> Documents:
    return collect(text_file_stream(path, split_by, max_documents))


def text_lines(blocks: Iterable[str]) -> Iterator[str]:
    """The lines of text given in blocks (split at ``\\n`` only, as ``str.split("\\n")``)."""
    carry = ""
    for block in blocks:
        lines = (carry + block).split("\n")
        carry = lines.pop()
        yield from lines
    yield carry


def jsonl_stream(path: str | os.PathLike[str], text_field: str = "text",
                 max_documents: int | None = None) -> DocumentStream:
    """One document per JSON line (the string in ``text_field``); blank lines and null values are skipped."""
    p = Path(path)

    def values(stream: DocumentStream) -> Iterator[tuple[str, Any]]:
        for lineno, line in enumerate(text_lines(text_blocks(p, "JSON Lines file", stream=stream)), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LeadingTermsError(f"{p}:{lineno} is not valid JSON ({exc.msg} at column {exc.colno})"
                                        ) from None
            except RecursionError:
                raise LeadingTermsError(f"{p}:{lineno} is not valid JSON here (nested too deeply)") from None
            if not isinstance(rec, dict) or text_field not in rec:
                raise LeadingTermsError(f"{p}:{lineno} has no field {text_field!r} (use --text-field)")
            yield f"{p}:{lineno}: field {text_field!r}", rec[text_field]

    def read(stream: DocumentStream) -> Iterator[str]:
        return _texts(values(stream), f"JSON Lines file {p}", stream)

    return DocumentStream(read, {"kind": "jsonl", "path": str(p), "text_field": text_field}, max_documents)


def jsonl_documents(path: str | os.PathLike[str], text_field: str = "text",
                    max_documents: int | None = None) -> Documents:
    return collect(jsonl_stream(path, text_field, max_documents))


# ----------------------------------------------------------------------------- HF datasets

#: Rows read from a map-style dataset at a time.
_DATASET_BATCH = 1000


def _texts(values: Iterable[tuple[str, Any]], what: str, stream: DocumentStream) -> Iterator[str]:
    """The documents among (where, value) pairs: null values and empty or whitespace-only texts skipped (as
    a text file's empty documents are; their number noted in ``stream.notes``), anything but a string or a
    string that is not valid Unicode refused (naming ``where``), none at all refused (naming ``what``)."""
    n = n_empty = 0
    for where, val in values:
        if val is None:
            continue
        if not isinstance(val, str):
            raise LeadingTermsError(f"{where} is {type(val).__name__}, not text")
        if not _CONTENT.search(val):
            n_empty += 1
            continue
        bad = None if val.isascii() else _SURROGATE.search(val)  # isascii: a flag, no scan of the text
        if bad is not None:
            raise LeadingTermsError(f"{where} is not valid Unicode (a lone surrogate, "
                                    f"U+{ord(bad.group()):04X}, at character {bad.start()})")
        n += 1
        yield val
    if not n:
        empty = f" (only {n_empty} empty ones)" if n_empty else ""
        raise LeadingTermsError(f"{what} holds no documents{empty}")
    if n_empty:
        stream.notes.append(f"skipped {n_empty} empty document{'s' if n_empty != 1 else ''}")


def _column_texts(rows: Iterable[Any], column: str, what: str, max_documents: int | None,
                  stream: DocumentStream) -> Iterator[str]:
    return _texts(((f"{what}: column {column!r}", v) for v in islice(rows, max_documents)), what, stream)


def _check_column(ds: Any, column: str, what: str) -> None:
    names = getattr(ds, "column_names", None)
    if names is not None and column not in names:
        cols = ", ".join(names)
        raise LeadingTermsError(f"{what} has no column {column!r} (columns: {cols}); use --text-field")


def _dataset_rows(ds: Any, column: str, what: str, max_documents: int | None) -> Iterator[Any]:
    """The values of a ``Dataset`` (read in batches) or ``IterableDataset`` column."""
    _check_column(ds, column, what)
    if hasattr(ds, "select") and hasattr(ds, "__len__"):  # map-style: a batch of the column at a time
        n = len(ds) if max_documents is None else min(max_documents, len(ds))
        for i in range(0, n, _DATASET_BATCH):
            yield from ds[i:min(i + _DATASET_BATCH, n)][column]
        return
    for rec in ds:  # streaming
        if column not in rec:
            raise LeadingTermsError(f"{what} has no column {column!r} (columns: {', '.join(rec)})")
        yield rec[column]


def _dataset_texts(ds: Any, column: str, what: str, max_documents: int | None, name: str,
                   stream: DocumentStream) -> Iterator[str]:
    try:
        yield from _column_texts(_dataset_rows(ds, column, what, max_documents), column, what, max_documents,
                                 stream)
    except LeadingTermsError:
        raise
    except Exception as exc:  # streaming reads lazily
        raise LeadingTermsError(f"cannot read {name}: {first_line(exc)}") from None


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:  # pragma: no cover - optional extra
        raise LeadingTermsError("Hugging Face datasets need `datasets` (pip install 'leadingterms[hf]')") from None
    return datasets


#: File suffix -> the ``datasets`` builder that reads it.
_BUILDERS = {"parquet": "parquet", "json": "json", "jsonl": "json", "csv": "csv", "txt": "text", "arrow": "arrow"}


def hf_stream(name: str, config: str | None = None, split: str = "train", text_column: str = "text",
              streaming: bool = False, data_files: list[str] | None = None,
              max_documents: int | None = None) -> DocumentStream:
    """``datasets.load_dataset(name, config, split=split, streaming=streaming, data_files=...)``."""
    if Path(name).is_file():
        builder = _BUILDERS.get(Path(name).suffix.lower().lstrip("."), "json, parquet, csv or text")
        raise LeadingTermsError(f"--dataset {name} is a file: name its format and give the file, e.g. --dataset "
                                f"{builder} --data-files {name}")
    datasets = _import_datasets()
    kwargs: dict[str, Any] = {"split": split, "streaming": streaming}
    if data_files:
        for f in data_files:
            if not Path(f).exists():
                raise LeadingTermsError(f"data file not found: {f}")
        kwargs["data_files"] = list(data_files)
    try:
        ds = datasets.load_dataset(name, config, **kwargs)
    except LeadingTermsError:
        raise
    except Exception as exc:  # datasets raises many types (connection, missing split, bad files)
        raise LeadingTermsError(f"cannot load dataset {name!r}: {first_line(exc)}") from None
    what = f"dataset {name!r} split {split!r}"
    _check_column(ds, text_column, what)
    source = {"kind": "hf_dataset", "name": name, "config": config, "split": split, "text_column": text_column,
              "streaming": streaming, "data_files": list(data_files) if data_files else None}
    return DocumentStream(lambda st: _dataset_texts(ds, text_column, what, max_documents, f"dataset {name!r}", st),
                          source)


def hf_documents(name: str, config: str | None = None, split: str = "train", text_column: str = "text",
                 streaming: bool = False, data_files: list[str] | None = None,
                 max_documents: int | None = None) -> Documents:
    return collect(hf_stream(name, config, split, text_column, streaming, data_files, max_documents))


def is_saved_dataset(path: str | os.PathLike[str]) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    p = Path(path)
    return p.is_dir() and ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file())


def disk_stream(path: str | os.PathLike[str], split: str = "train", text_column: str = "text",
                max_documents: int | None = None) -> DocumentStream:
    """``datasets.load_from_disk(path)`` (a Dataset, or a DatasetDict and its ``split``), memory-mapped."""
    p = Path(path)
    if p.is_file():
        raise LeadingTermsError(f"{p} is a file, not a dataset folder written by save_to_disk (a data file is "
                                "read with --dataset FORMAT --data-files FILE)")
    if not p.is_dir():
        raise LeadingTermsError(f"dataset folder not found: {p} (expected a folder written by save_to_disk)")
    datasets = _import_datasets()
    try:
        ds = datasets.load_from_disk(str(p))
    except Exception as exc:
        raise LeadingTermsError(f"cannot read dataset folder {p}: {first_line(exc)}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            splits = ", ".join(ds)
            raise LeadingTermsError(f"dataset folder {p} has no split {split!r} (splits: {splits}); use --split")
        ds = ds[split]
    what = f"dataset folder {p}"
    _check_column(ds, text_column, what)
    return DocumentStream(lambda st: _dataset_texts(ds, text_column, what, max_documents, what, st),
                          {"kind": "load_from_disk", "path": str(p), "split": split, "text_column": text_column})


def disk_documents(path: str | os.PathLike[str], split: str = "train", text_column: str = "text",
                   max_documents: int | None = None) -> Documents:
    return collect(disk_stream(path, split, text_column, max_documents))


def tree_identity(p: Path) -> dict[str, Any]:
    """Fingerprint of a file or folder: path, sizes and mtimes (content is not read)."""
    if p.is_file():
        return _file_identity(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return {"path": str(p.resolve()), "tree": h.hexdigest()[:16]}
