"""Corpus sources -> documents (a list of strings, in source order).

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
import gzip
import hashlib
import json
import lzma
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from leadingterms.config import option
from leadingterms.corpus import synthetic
from leadingterms.errors import LeadingTermsError, first_line
from leadingterms.validate import positive_int

EOT = "<|endoftext|>"
SPLIT_MODES = ("auto", "eot", "blank", "line")
_EOT_LINE = re.compile(r"^[ \t\r]*<\|endoftext\|>[ \t\r]*$", re.M)
_BLANK_LINE = re.compile(r"\n[ \t\r]*\n")  # one or more blank lines separate documents


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
    synthetic_seed: int = option(0, help="seed of the synthetic stories", metavar="S", group=SOURCE_GROUP)

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
    """The :class:`SourceConfig` fields of ``src`` (which may be any config extending it)."""
    from dataclasses import fields

    return {f.name: getattr(src, f.name) for f in fields(SourceConfig)}


def read_documents(src: SourceConfig) -> Documents:
    """The documents of a source, in source order (``max_documents`` caps them)."""
    kind = src.source_kind()
    if kind == "text":
        assert src.text is not None
        return text_file_documents(src.text, src.split_by, src.max_documents)
    if kind == "jsonl":
        assert src.jsonl is not None
        return jsonl_documents(src.jsonl, src.text_field, src.max_documents)
    if kind == "dataset":
        assert src.dataset is not None
        if is_saved_dataset(src.dataset):  # a save_to_disk folder given as --dataset
            return disk_documents(src.dataset, src.split, src.text_field, src.max_documents)
        return hf_documents(src.dataset, src.dataset_config, src.split, src.text_field, src.streaming,
                            src.data_files, src.max_documents)
    if kind == "load_from_disk":
        assert src.load_from_disk is not None
        return disk_documents(src.load_from_disk, src.split, src.text_field, src.max_documents)
    n = src.synthetic_docs if src.max_documents is None else min(src.synthetic_docs, src.max_documents)
    return Documents(synthetic.generate_documents(n, src.synthetic_seed),
                     {"kind": "synthetic", "n_docs": n, "seed": src.synthetic_seed,
                      "generator_version": synthetic.GENERATOR_VERSION})


# ----------------------------------------------------------------------------- files


_MAGIC = {b"\xfd7zXZ\x00": "xz", b"\x1f\x8b": "gz", b"BZh": "bz2"}


def _compression(path: Path, head: bytes) -> str | None:
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    ext = path.suffix.lower().lstrip(".")
    if ext in ("xz", "gz", "bz2"):
        raise LeadingTermsError(f"{path} has a .{ext} name but is not {ext}-compressed")
    return None


def read_text(path: str | os.PathLike[str], what: str = "text file") -> str:
    """Whole file as UTF-8 text, decompressing xz/gz/bz2 (by content). One-line errors for a
    missing, empty, corrupt or binary file."""
    p = Path(path)
    if not p.exists():
        raise LeadingTermsError(f"{what} not found: {p}")
    if not p.is_file():
        raise LeadingTermsError(f"{what} is not a file: {p}")
    raw = p.read_bytes()
    kind = _compression(p, raw[:6])
    if kind is not None:
        opener = {"xz": lzma.decompress, "gz": gzip.decompress, "bz2": bz2.decompress}[kind]
        try:
            raw = opener(raw)
        except (lzma.LZMAError, OSError, EOFError, ValueError) as exc:
            raise LeadingTermsError(f"{what} {p} is a corrupt {kind} file: {exc}") from None
    if b"\x00" in raw[:65536]:
        raise LeadingTermsError(f"{what} {p} looks binary (it holds NUL bytes); expected UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LeadingTermsError(f"{what} {p} is not UTF-8 text (invalid byte at offset {exc.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise LeadingTermsError(f"{what} {p} is empty")
    return text


def detect_split(text: str) -> str:
    """``eot`` if a line holds only <|endoftext|>, else ``blank`` if there is a blank line, else ``line``."""
    if _EOT_LINE.search(text):
        return "eot"
    if _BLANK_LINE.search(text.strip()):
        return "blank"
    return "line"


def split_documents(text: str, split_by: str = "auto") -> tuple[list[str], str, int]:
    """Split ``text`` into documents -> (documents, mode used, unterminated trailing documents dropped).

    ``eot``: documents end with a line that holds only ``<|endoftext|>``; text after the last
    such line is an unterminated (truncated) story and is dropped (counted in the third value).
    ``blank``: blank lines separate documents. ``line``: one document per non-empty line.
    Documents are stripped of surrounding whitespace; empty ones are skipped.
    """
    if split_by not in SPLIT_MODES:
        raise LeadingTermsError(f"unknown --split-by {split_by!r}; use one of {', '.join(SPLIT_MODES)}")
    mode = detect_split(text) if split_by == "auto" else split_by
    n_unterminated = 0
    if mode == "eot":
        parts = _EOT_LINE.split(text)
        if len(parts) > 1 and parts[-1].strip():
            n_unterminated = 1
        parts = parts[:-1] if len(parts) > 1 else parts
    elif mode == "blank":
        parts = _BLANK_LINE.split(text)
    else:
        parts = text.split("\n")
    docs = [s for s in (p.strip() for p in parts) if s]
    return docs, mode, n_unterminated


def _file_identity(p: Path) -> dict[str, Any]:
    st = p.stat()
    return {"path": str(p.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def text_file_documents(path: str | os.PathLike[str], split_by: str = "auto",
                        max_documents: int | None = None) -> Documents:
    p = Path(path)
    docs, mode, unterminated = split_documents(read_text(p), split_by)
    notes = []
    if unterminated:
        notes.append(f"dropped the text after the last {EOT} line (an unterminated, truncated document)")
    if max_documents is not None:
        docs = docs[:max_documents]
    return Documents(docs, {"kind": "text", "path": str(p), "split_by": mode}, notes, unterminated)


def jsonl_documents(path: str | os.PathLike[str], text_field: str = "text",
                    max_documents: int | None = None) -> Documents:
    """One document per JSON line (the string in ``text_field``); blank lines are skipped."""
    p = Path(path)
    docs: list[str] = []
    for lineno, line in enumerate(read_text(p, "JSON Lines file").split("\n"), 1):
        if not line.strip():
            continue
        if max_documents is not None and len(docs) >= max_documents:
            break
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LeadingTermsError(f"{p}:{lineno} is not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict) or text_field not in rec:
            raise LeadingTermsError(f"{p}:{lineno} has no field {text_field!r} (use --text-field)")
        val = rec[text_field]
        if val is None:
            continue
        if not isinstance(val, str):
            raise LeadingTermsError(f"{p}:{lineno}: field {text_field!r} is {type(val).__name__}, not text")
        docs.append(val)
    if not docs:
        raise LeadingTermsError(f"JSON Lines file {p} holds no documents")
    return Documents(docs, {"kind": "jsonl", "path": str(p), "text_field": text_field})


# ----------------------------------------------------------------------------- HF datasets


def _column_texts(rows: Iterable[Any], column: str, what: str, max_documents: int | None) -> list[str]:
    docs: list[str] = []
    for val in islice(rows, max_documents):
        if val is None:
            continue
        if not isinstance(val, str):
            raise LeadingTermsError(f"{what}: column {column!r} holds {type(val).__name__}, not text")
        docs.append(val)
    if not docs:
        raise LeadingTermsError(f"{what} holds no documents")
    return docs


def _dataset_texts(ds: Any, column: str, what: str, max_documents: int | None) -> list[str]:
    """Texts of a ``Dataset`` or ``IterableDataset`` column."""
    names = getattr(ds, "column_names", None)
    if names is not None and column not in names:
        cols = ", ".join(names)
        raise LeadingTermsError(f"{what} has no column {column!r} (columns: {cols}); use --text-column")
    rows: Iterator[Any]
    if hasattr(ds, "select") and hasattr(ds, "__len__"):  # map-style: read the column in one go
        n = len(ds) if max_documents is None else min(max_documents, len(ds))
        rows = iter(ds.select(range(n))[column] if n < len(ds) else ds[column])
    else:  # streaming
        def stream() -> Iterator[Any]:
            for rec in ds:
                if column not in rec:
                    raise LeadingTermsError(f"{what} has no column {column!r} (columns: {', '.join(rec)})")
                yield rec[column]
        rows = stream()
    return _column_texts(rows, column, what, max_documents)


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:  # pragma: no cover - optional extra
        raise LeadingTermsError("Hugging Face datasets need `datasets` (pip install 'leadingterms[hf]')") from None
    return datasets


def hf_documents(name: str, config: str | None = None, split: str = "train", text_column: str = "text",
                 streaming: bool = False, data_files: list[str] | None = None,
                 max_documents: int | None = None) -> Documents:
    """``datasets.load_dataset(name, config, split=split, streaming=streaming, data_files=...)``."""
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
    try:
        docs = _dataset_texts(ds, text_column, what, max_documents)
    except LeadingTermsError:
        raise
    except Exception as exc:  # streaming reads lazily
        raise LeadingTermsError(f"cannot read dataset {name!r}: {first_line(exc)}") from None
    source = {"kind": "hf_dataset", "name": name, "config": config, "split": split, "text_column": text_column,
              "streaming": streaming, "data_files": list(data_files) if data_files else None}
    return Documents(docs, source)


def is_saved_dataset(path: str | os.PathLike[str]) -> bool:
    """True for a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    p = Path(path)
    return p.is_dir() and ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file())


def disk_documents(path: str | os.PathLike[str], split: str = "train", text_column: str = "text",
                   max_documents: int | None = None) -> Documents:
    """``datasets.load_from_disk(path)`` (a Dataset, or a DatasetDict and its ``split``)."""
    p = Path(path)
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
    docs = _dataset_texts(ds, text_column, f"dataset folder {p}", max_documents)
    return Documents(docs, {"kind": "load_from_disk", "path": str(p), "split": split, "text_column": text_column})


def tree_identity(p: Path) -> dict[str, Any]:
    """Fingerprint of a file or folder: path, sizes and mtimes (content is not read)."""
    if p.is_file():
        return _file_identity(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(p)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return {"path": str(p.resolve()), "tree": h.hexdigest()[:16]}
