"""The token store: ``DIR/corpus.json`` + the token rows in one or more memory-mapped ``.npy`` shards.

This is the contract between the corpus stage and everything downstream.

- ``tokens.npy`` (one shard) or ``tokens-00000.npy``, ``tokens-00001.npy``, ... (several shards of
  at most :data:`DEFAULT_SHARD_BYTES`): the (N, T+1) integer rows, row i = sequence i = tokens
  x_0 .. x_T (inputs x_0..x_{T-1}, targets y_t = x_{t+1}), shards in row order; uint16 when
  V <= 65,535 else uint32; loaded memory-mapped.
- ``val_tokens.npy`` / ``val_tokens-00000.npy``, ... (optional): the validation sequences, same layout.
- ``corpus.json``: at least ``vocab`` (token strings in id order), ``V``, ``seq_len`` (T),
  ``n_sequences``, ``content_hash``, ``shards`` (file names and row counts per array) and
  whatever the producer adds (source, tokenizer settings, counts).

``TokenStore.tokens`` is the one shard's memmap, or a :class:`ShardedArray` (a read-only view
with numpy indexing over the shards). Stores written before shards existed (``tokens.npy``,
no ``shards`` entry) load as one-shard stores. The content hash is the same whatever the
sharding (see :func:`content_hash`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from leadingterms.errors import LeadingTermsError
from leadingterms.persist import folder_of, read_json, write_json
from leadingterms.provenance import file_record, text_digest, verify_files
from leadingterms.schema import NONNEG_INT, OBJECT, POS_INT, STR, Field, check_fields, check_that

TOKENS_FILE = "tokens.npy"
VAL_TOKENS_FILE = "val_tokens.npy"
META_FILE = "corpus.json"
STORE_FORMAT = 2
ARRAYS = ("tokens", "val_tokens")
#: Largest shard written (bytes of token ids).
DEFAULT_SHARD_BYTES = 256 * 2**20
#: The tokenizer of a bpe/hf store (written by :meth:`leadingterms.corpus.tokenizers.CorpusTokenizer.save`).
TOKENIZER_FILE = "tokenizer.json"
_OLD_TOKENIZER_DIR = "tokenizer"  # the tokenizer folder of stores written before tokenizer.json (left as it is)
_SHARD_NAME = re.compile(r"^(tokens|val_tokens)(-\d{5})?\.npy$")
_READ_ROWS_BYTES = 4 * 2**20  # sequential reads for hashing


def token_dtype(V: int) -> type[np.unsignedinteger[Any]]:
    """uint16 when every id fits (V <= 65,535), else uint32."""
    return np.uint16 if V <= 65_535 else np.uint32


def shard_file(name: str, index: int, n_shards: int) -> str:
    """``tokens.npy`` for a one-shard array, else ``tokens-00003.npy``."""
    return f"{name}.npy" if n_shards == 1 else f"{name}-{index:05d}.npy"


class ShardedArray:
    """A read-only (N, W) integer array stored as row shards (memory-mapped), indexed like numpy:
    ``a[i]``, ``a[i:j]`` (a view: the shard's memmap, or a ShardedArray over several; nothing is
    read), ``a[index_array]`` and ``a[rows, cols]`` (copies), ``np.asarray(a)`` (copies everything),
    ``a.max()``, ``len(a)``. ``shards`` are the parts in row order."""

    def __init__(self, shards: list[np.ndarray]) -> None:
        if not shards:
            raise ValueError("a sharded array needs at least one shard")
        self.shards = shards
        self.offsets = np.cumsum([0] + [len(s) for s in shards])
        self.dtype = shards[0].dtype
        self.shape = (int(self.offsets[-1]), int(shards[0].shape[1]))
        self.ndim = 2

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"ShardedArray(shape={self.shape}, dtype={self.dtype}, shards={len(self.shards)})"

    def _rows(self, key: Any) -> Any:
        N = self.shape[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(N)
            if step == 1:
                parts = []
                for s, (a, b) in enumerate(zip(self.offsets[:-1], self.offsets[1:], strict=True)):
                    lo, hi = max(start, a), min(stop, b)
                    if lo < hi:
                        parts.append(self.shards[s][lo - a: hi - a])
                if len(parts) == 1:
                    return parts[0]
                return ShardedArray(parts) if parts else np.zeros((0, self.shape[1]), dtype=self.dtype)
            key = np.arange(start, stop, step)
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (N,):
                raise IndexError(f"boolean index of shape {idx.shape} for {N} rows")
            idx = np.flatnonzero(idx)
        if not np.issubdtype(idx.dtype, np.integer):
            raise IndexError(f"rows must be selected by integers, slices or booleans, got {idx.dtype}")
        if idx.ndim == 0:
            i = int(idx) + (N if int(idx) < 0 else 0)
            if not 0 <= i < N:
                raise IndexError(f"row {int(idx)} out of range for {N} rows")
            s = int(np.searchsorted(self.offsets, i, side="right")) - 1
            return self.shards[s][i - self.offsets[s]]
        flat = idx.reshape(-1).astype(np.int64)
        flat = np.where(flat < 0, flat + N, flat)
        if flat.size and (flat.min() < 0 or flat.max() >= N):
            raise IndexError(f"row index out of range for {N} rows")
        which = np.searchsorted(self.offsets, flat, side="right") - 1
        out = np.empty((len(flat), self.shape[1]), dtype=self.dtype)
        for s in np.unique(which):
            sel = which == s
            out[sel] = self.shards[s][flat[sel] - self.offsets[s]]
        return out.reshape(idx.shape + (self.shape[1],))

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            rows = self._rows(key[0])
            rows = np.asarray(rows) if isinstance(rows, ShardedArray) else rows
            return rows[(slice(None),) * (rows.ndim - 1) + key[1:]] if rows.ndim > 1 else rows[key[1:]]
        return self._rows(key)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.concatenate(self.shards)
        return out if dtype is None else out.astype(dtype, copy=False)

    def __iter__(self) -> Iterator[np.ndarray]:
        for shard in self.shards:
            yield from shard

    def astype(self, dtype: Any) -> np.ndarray:
        return np.asarray(self, dtype=dtype)

    def max(self) -> Any:
        return max(s.max() for s in self.shards if s.size) if self.size else np.zeros(0, self.dtype).max()

    def min(self) -> Any:
        return min(s.min() for s in self.shards if s.size) if self.size else np.zeros(0, self.dtype).min()


def row_shards(tokens: Any) -> list[Any]:
    """The parts of a token array in row order (the shards of a :class:`ShardedArray`, else the array)."""
    return list(tokens.shards) if isinstance(tokens, ShardedArray) else [tokens]


def _hash(vocab: list[str], arrays: list[tuple[tuple[int, int], Iterator[np.ndarray]] | None]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
    for arr in arrays:
        if arr is None:
            h.update(b"|none")
            continue
        shape, blocks = arr
        h.update(f"|{shape}".encode())
        for block in blocks:
            h.update(np.ascontiguousarray(block, dtype="<u4").data.cast("B"))
    return h.hexdigest()[:16]


def _row_blocks(arr: Any) -> Iterator[np.ndarray]:
    step = max(1, _READ_ROWS_BYTES // max(1, 4 * int(arr.shape[1])))
    for part in row_shards(arr):
        for i in range(0, len(part), step):
            yield part[i:i + step]


def content_hash(tokens: Any, vocab: list[str], val_tokens: Any = None) -> str:
    """sha256 over the vocabulary and the token ids (little-endian uint32), first 16 hex digits.

    The same for any sharding of the rows (``tokens``/``val_tokens``: arrays or :class:`ShardedArray`)."""
    return _hash(vocab, [None if a is None else ((int(a.shape[0]), int(a.shape[1])), _row_blocks(a))
                         for a in (tokens, val_tokens)])


def _file_blocks(files: list[Path]) -> Iterator[np.ndarray]:
    """The ids of ``.npy`` files in blocks, by reading (not mapping) them."""
    for path in files:
        with open(path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            left = int(np.prod(shape))
            step = max(1, _READ_ROWS_BYTES // dtype.itemsize)
            while left:
                block = np.fromfile(f, dtype=dtype, count=min(step, left))
                left -= len(block)
                yield block


def files_hash(folder: Path, vocab: list[str], shards: Mapping[str, list[list[Any]]], W: int) -> str:
    """:func:`content_hash` of a store's shard files (read sequentially, a block at a time)."""
    arrays: list[tuple[tuple[int, int], Iterator[np.ndarray]] | None] = []
    for name in ARRAYS:
        if name not in shards:
            arrays.append(None)
            continue
        n = sum(int(r) for _, r in shards[name])
        arrays.append(((n, W), _file_blocks([folder / f for f, _ in shards[name]])))
    return _hash(vocab, arrays)


@dataclass(frozen=True)
class TokenStore:
    """A loaded token store. ``tokens`` is (N, T+1); row = sequence, col = position 0..T."""

    path: Path
    tokens: Any  # np.ndarray (memmap) or ShardedArray
    vocab: list[str]
    meta: dict[str, Any] = field(repr=False)
    val_tokens: Any = None

    @property
    def V(self) -> int:
        return len(self.vocab)

    @property
    def T(self) -> int:
        """Number of predicted positions per sequence (sequence length T; rows hold T+1 ids)."""
        return int(self.tokens.shape[1]) - 1

    @property
    def N(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def content_hash(self) -> str:
        return str(self.meta["content_hash"])

    def shard_files(self) -> list[tuple[Path, int]]:
        """(file, rows) of every training shard, in row order."""
        return [(self.path / f, n) for f, n in _shard_list(self.meta, "tokens")]


# ----------------------------------------------------------------------------- writing


class StoreWriter:
    """Writes a store's rows incrementally into shard files of at most ``shard_bytes``.

    The row counts are known in advance (``rows``: array name -> N, or None for an absent array), so
    each shard's ``.npy`` header is written with its final shape and the rows streamed after it.
    ``write(name, rows)`` appends (n, T+1) rows to array ``name`` (arrays are separate files, so
    their writes may interleave). ``close()`` -> the ``shards`` entry of corpus.json.
    """

    def __init__(self, folder: Path, V: int, T: int, rows: Mapping[str, int | None],
                 shard_bytes: int = DEFAULT_SHARD_BYTES) -> None:
        self.folder, self.W, self.dtype = folder, T + 1, np.dtype(token_dtype(V))
        self.V = V
        self.shard_rows = max(1, shard_bytes // (self.W * self.dtype.itemsize))
        self.rows = {k: v for k, v in rows.items() if v is not None}
        for name, n in self.rows.items():
            if n < 0 or name not in ARRAYS:
                raise ValueError(f"bad array {name!r} with {n} rows")
        self._written = dict.fromkeys(self.rows, 0)
        self._files: dict[str, IO[bytes]] = {}
        self._left: dict[str, int] = {}  # rows still to write in the open shard
        self.shards: dict[str, list[list[Any]]] = {name: [] for name in self.rows}

    def _n_shards(self, name: str) -> int:
        return max(1, -(-self.rows[name] // self.shard_rows))

    def _open(self, name: str) -> IO[bytes]:
        index = len(self.shards[name])
        start = index * self.shard_rows
        n = min(self.shard_rows, self.rows[name] - start) if self.rows[name] else 0
        fname = shard_file(name, index, self._n_shards(name))
        f = open(self.folder / fname, "wb")
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (n, self.W)})
        self.shards[name].append([fname, n])
        self._files[name] = f
        self._left[name] = n
        return f

    def write(self, name: str, rows: np.ndarray) -> None:
        """Append rows (n, T+1) with ids in [0, V) to array ``name``."""
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.W:
            raise LeadingTermsError(f"{name} rows must be (n, {self.W}), got {rows.shape}")
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= self.V):
            bad = int(rows.max()) if int(rows.max()) >= self.V else int(rows.min())
            raise LeadingTermsError(f"token id {bad} out of range for V={self.V}")
        if self._written[name] + len(rows) > self.rows[name]:
            raise ValueError(f"{name}: more rows than the {self.rows[name]} announced")
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        i = 0
        while i < len(data):
            if not self._left.get(name):
                self._close(name)
                self._open(name)
            take = min(self._left[name], len(data) - i)
            data[i:i + take].tofile(self._files[name])  # its bytes, without a copy
            self._left[name] -= take
            self._written[name] += take
            i += take

    def _close(self, name: str) -> None:
        f = self._files.pop(name, None)
        if f is not None:
            f.close()

    def close(self) -> dict[str, list[list[Any]]]:
        """Finish every array (an empty one gets its one empty shard) -> ``{name: [[file, rows], ...]}``."""
        for name, n in self.rows.items():
            if self._written[name] != n:
                raise ValueError(f"{name}: {self._written[name]} rows written of {n}")
            if not self.shards[name]:
                self._open(name)
            self._close(name)
        return self.shards

    def abort(self) -> None:
        for name in list(self._files):
            self._close(name)


def _token_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if _SHARD_NAME.match(p.name)] if folder.is_dir() else []


def is_store_file(name: str) -> bool:
    """Whether a store writes an entry of this name into its folder (older versions included)."""
    return bool(_SHARD_NAME.match(name)) or name in (META_FILE, TOKENIZER_FILE, _OLD_TOKENIZER_DIR)


def publish(build: Path, out: Path, meta: Mapping[str, Any]) -> None:
    """Move the files written in ``build`` (shards, and ``tokenizer.json`` for bpe/hf) into ``out``, replacing
    an earlier store's, and write ``corpus.json`` last: the store is complete exactly when corpus.json is.

    corpus.json records every token file (size, mtime, BLAKE2b: :func:`leadingterms.provenance.file_record`)
    and the hash of the vocabulary, so that :func:`load_store` notices a file edited or swapped later."""
    out.mkdir(parents=True, exist_ok=True)
    (out / META_FILE).unlink(missing_ok=True)  # the store is incomplete until corpus.json is rewritten
    for old in [*_token_files(out), out / TOKENIZER_FILE]:
        old.unlink(missing_ok=True)
    tokenizer = [build / TOKENIZER_FILE] if (build / TOKENIZER_FILE).is_file() else []
    for new in [*_token_files(build), *tokenizer]:
        os.replace(new, out / new.name)
    full = dict(meta)
    full["files"] = {p.name: file_record(p) for p in sorted(_token_files(out))}
    full["vocab_hash"] = text_digest(list(full.get("vocab", [])))
    write_json(out / META_FILE, full)


def store_meta(meta: Mapping[str, Any], vocab: list[str], T: int, shards: Mapping[str, list[list[Any]]],
               chash: str) -> dict[str, Any]:
    """``meta`` completed with the fields every store has."""
    full = dict(meta)
    n = {name: sum(int(r) for _, r in shards.get(name, [])) for name in ARRAYS}
    full.update(
        format=STORE_FORMAT,
        V=len(vocab),
        seq_len=T,
        n_sequences=n["tokens"],
        n_val_sequences=n["val_tokens"],
        token_dtype=np.dtype(token_dtype(len(vocab))).name,
        content_hash=chash,
        shards={name: [list(s) for s in files] for name, files in shards.items()},
        vocab=list(vocab),
    )
    return full


def write_store(
    out_dir: str | Path,
    tokens: np.ndarray,
    vocab: list[str],
    meta: Mapping[str, Any],
    val_tokens: np.ndarray | None = None,
    *,
    shard_bytes: int = DEFAULT_SHARD_BYTES,
) -> TokenStore:
    """Write a store of rows in memory atomically (shards first, ``corpus.json`` last) and return it loaded."""
    out = Path(out_dir)
    V = len(vocab)
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise LeadingTermsError(f"tokens must be (N, T+1) with T >= 1, got shape {tokens.shape}")
    if val_tokens is not None:
        val_tokens = np.asarray(val_tokens)
        if val_tokens.ndim != 2 or val_tokens.shape[1] != tokens.shape[1]:
            raise LeadingTermsError(f"validation tokens shape {val_tokens.shape} does not match {tokens.shape}")
    T = int(tokens.shape[1]) - 1
    with build_folder(out) as build:
        writer = StoreWriter(build, V, T, {"tokens": len(tokens), "val_tokens": None if val_tokens is None
                                           else len(val_tokens)}, shard_bytes)
        try:
            writer.write("tokens", tokens)
            if val_tokens is not None:
                writer.write("val_tokens", val_tokens)
            shards = writer.close()
        except BaseException:
            writer.abort()
            raise
        chash = content_hash(tokens, list(vocab), val_tokens)
        publish(build, out, store_meta(meta, list(vocab), T, shards, chash))
    return load_store(out)


class build_folder:  # noqa: N801 - used as a context manager
    """A fresh folder next to ``out`` (same file system, so its files move into ``out`` by rename),
    removed on exit whatever happens."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def __enter__(self) -> Path:
        import tempfile

        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.build-", dir=self.out.parent))
        return self.path

    def __exit__(self, *exc: Any) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# ----------------------------------------------------------------------------- reading


def _load_npy(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise LeadingTermsError(f"{what} is missing: {path}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise LeadingTermsError(f"{what} is corrupt ({path}): {str(exc).splitlines()[0][:100]}") from None
    return arr


def _shard_list(meta: Mapping[str, Any], name: str) -> list[tuple[str, int]]:
    """(file, rows) of array ``name`` from corpus.json; a store without ``shards`` has ``name``.npy."""
    shards = meta.get("shards")
    if not isinstance(shards, dict):
        return []
    entries = shards.get(name) or []
    if not isinstance(entries, list) or not all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[1], int) and not isinstance(e[1], bool)
            and e[1] >= 0 for e in entries):
        raise LeadingTermsError(f"token store metadata lists its {name} shards wrongly (field 'shards' must map "
                                "'tokens' to [[file, rows], ...])")
    for f, _ in entries:
        if not isinstance(f, str) or not _SHARD_NAME.match(f):
            raise LeadingTermsError(f"token store metadata names an unexpected shard file {f!r}")
    return [(str(f), int(n)) for f, n in entries]


def _load_array(p: Path, meta: Mapping[str, Any], name: str, T: int, required: bool) -> Any:
    """The rows of array ``name`` (memmap, ShardedArray, or None when absent and not required)."""
    what = "token file" if name == "tokens" else "validation token file"
    entries = _shard_list(meta, name)
    if not entries:
        legacy = p / f"{name}.npy"
        if "shards" in meta or not legacy.is_file():
            if required:
                raise LeadingTermsError(f"not a token store: {p} has no {TOKENS_FILE}")
            return None
        entries = [(legacy.name, -1)]
    parts = []
    for f, n in entries:
        arr = _load_npy(p / f, what)
        if arr.ndim != 2 or arr.shape[1] != T + 1 or (n >= 0 and arr.shape[0] != n):
            raise LeadingTermsError(
                f"token store {p} is inconsistent: {f} has shape {arr.shape}, expected "
                f"({n if n >= 0 else 'N'}, {T + 1})")
        if not np.issubdtype(arr.dtype, np.integer):
            raise LeadingTermsError(f"token store {p} is corrupt: {f} has dtype {arr.dtype}")
        parts.append(arr)
    return parts[0] if len(parts) == 1 else ShardedArray(parts)


def load_store(path: str | Path) -> TokenStore:
    """Load a store written by :func:`write_store` or the corpus stage (its folder, or a file in it),
    checking it is complete and consistent."""
    p = folder_of(path, (TOKENS_FILE, VAL_TOKENS_FILE, META_FILE))
    if not p.is_dir():
        raise LeadingTermsError(f"token store not found: {p} (make one with `leadingterms corpus --out {p}`)")
    if not (p / META_FILE).is_file() and not (p / TOKENS_FILE).is_file():
        raise LeadingTermsError(f"not a token store: {p} has no {TOKENS_FILE}")
    meta = read_json(p / META_FILE, what="token store metadata")
    fix = rebuild_hint(p)
    check_store_meta(meta, p / META_FILE, fix)
    if "files" in meta:  # stores written before file records existed are not verified
        verify_files(p, meta["files"], what=f"token store {p}", fix=fix)
    vocab = list(meta["vocab"])
    T = int(meta["seq_len"])
    tokens = _load_array(p, meta, "tokens", T, required=True)
    if meta.get("n_sequences") is not None and tokens.shape[0] != meta["n_sequences"]:
        raise LeadingTermsError(f"{p / META_FILE} is inconsistent: field 'n_sequences' is {meta['n_sequences']} "
                                f"but the token files hold {tokens.shape[0]} rows; {fix}")
    val = _load_array(p, meta, "val_tokens", T, required=False)
    return TokenStore(path=p, tokens=tokens, vocab=vocab, meta=meta, val_tokens=val)


def rebuild_hint(p: Path) -> str:
    """The way out of a broken or changed store at ``p``."""
    return f"rebuild it with `leadingterms corpus ... --out {p} --force`"


#: The fields of corpus.json every reader relies on (V, n_sequences, shards, files: absent in older stores).
STORE_FIELDS: dict[str, Field] = {
    "vocab": Field(lambda v: isinstance(v, list) and len(v) >= 1 and all(isinstance(x, str) for x in v),
                   "a non-empty list of strings"),
    "seq_len": POS_INT,
    "content_hash": STR,
    "V": POS_INT.or_null(),
    "n_sequences": NONNEG_INT.or_null(),
    "shards": OBJECT.or_null(),
    "files": OBJECT.or_null(),
    "vocab_hash": STR.or_null(),
}


def check_store_meta(meta: Any, where: Path, fix: str) -> None:
    """Schema of corpus.json (:data:`STORE_FIELDS`) and its consistency: V = len(vocab), distinct tokens,
    the vocabulary hash when recorded. One-line errors naming the file and the field."""
    check_fields(meta, STORE_FIELDS, where=where, fix=fix)
    vocab = meta["vocab"]
    if meta.get("V") is not None:
        check_that(meta["V"] == len(vocab), where,
                   f"field 'V' is {meta['V']} but field 'vocab' has {len(vocab)} tokens", fix)
    check_that(len(set(vocab)) == len(vocab), where, "field 'vocab' lists a token twice", fix)
    if meta.get("vocab_hash") is not None:
        check_that(text_digest(vocab) == meta["vocab_hash"], where,
                   "field 'vocab' was changed after the store was written (its hash differs from 'vocab_hash')",
                   fix)


def check_ids_in_range(store: TokenStore) -> None:
    """Full scan: every id < V (run once by consumers that index V-sized tables)."""
    for name, arr in (("tokens", store.tokens), ("val_tokens", store.val_tokens)):
        if arr is not None and arr.size and int(arr.max()) >= store.V:
            raise LeadingTermsError(
                f"token store {store.path} is corrupt: {name} holds id {int(arr.max())} >= V={store.V}"
            )
