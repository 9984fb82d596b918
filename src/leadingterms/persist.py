"""Atomic writes and safetensors + JSON persistence.

Every file the project writes goes through here: temp file in the same directory, then
``os.replace``, so an interrupted run never leaves a half-written file behind.
Tensors are stored with safetensors (never pickle); metadata as JSON.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from leadingterms.errors import LeadingTermsError

if TYPE_CHECKING:  # torch is imported where tensors are written or read, not by every caller of atomic_path
    import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permission bits of written files: what a plain ``open(..., "w")`` would give (0666 minus the umask),
#: so results in a shared folder stay readable by others (``mkstemp`` alone creates 0600).
FILE_MODE = 0o666 & ~_umask()
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_DISK_FULL_TEXT = ("No space left on device", "File too large", "Disk quota exceeded")
TEMP_SUFFIX = ".tmp"


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk, a quota or a file-size limit raise (also when a library wraps
    them in its own exception type, e.g. safetensors' "File too large")."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
        return True
    return any(t in str(exc) for t in _DISK_FULL_TEXT)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    The temporary file is removed whatever happens; the target is either the old file or the
    complete new one. A full disk (or file-size limit) becomes a one-line error naming ``path``;
    other file-system errors name ``path`` too, never the temporary file."""
    target = Path(path)
    if target.is_dir():
        raise LeadingTermsError(f"cannot write {target}: it is a directory (give a file path)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    except OSError as exc:
        raise LeadingTermsError(f"cannot write {target}: {exc.strerror or exc}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, target)
    except Exception as exc:
        if is_disk_full(exc):
            raise disk_full_error(target) from None
        if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError) and exc.filename == str(tmp_path):
            raise LeadingTermsError(f"cannot write {target}: {exc.strerror or exc}") from None
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def remove_stale_temps(folder: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Delete the temporary files of interrupted writes (``.NAME.*.tmp``) in ``folder``; with ``name``,
    only those of the file ``name`` (a file output shares its folder with other commands' outputs).

    Call only while holding the output lock of what is cleaned (:mod:`leadingterms.locks`): then no
    live writer owns them."""
    d = Path(folder)
    if not d.is_dir():
        return []
    prefix = "." if name is None else f".{name}."
    stale = [p for p in d.iterdir() if p.name.startswith(prefix) and p.name.endswith(TEMP_SUFFIX) and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Read JSON, raising a one-line error if it is missing or corrupt."""
    p = Path(path)
    if not p.is_file():
        raise LeadingTermsError(f"{what} not found: {p}")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LeadingTermsError(f"{what} is corrupt ({p}): {exc.__class__.__name__}") from None


#: torch dtypes -> safetensors dtype codes (the codes :data:`_SAFETENSORS_DTYPES` reads back), in the order of
#: the safetensors format's dtype list: its writer lays tensors out by decreasing position here, then by name
_DTYPE_CODES = {"bool": "BOOL", "uint8": "U8", "int8": "I8", "int16": "I16", "float16": "F16", "bfloat16": "BF16",
                "int32": "I32", "float32": "F32", "float64": "F64", "int64": "I64"}
_DTYPE_RANK = {name: i for i, name in enumerate(_DTYPE_CODES)}


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor | np.ndarray],
    metadata: Mapping[str, Any] | None = None,
    *,
    digest: bool = False,
) -> str | None:
    """Atomically write ``tensors`` to a safetensors file; with ``digest``, return the BLAKE2b-128 of the
    file's bytes (:func:`leadingterms.provenance.file_digest`), hashed from memory while the file is written.

    ``metadata`` (any JSON-serialisable mapping) is stored in the safetensors header under the key
    ``"json"``. The bytes are those of ``safetensors.torch.save_file`` (header first, then the tensors
    in the order of :data:`_DTYPE_CODES`; tests/unit/test_persist.py), written straight from the
    tensors' memory: no copy, and no second read of the file for its hash.
    """
    import torch

    from leadingterms.provenance import chunks_digest

    if sys.byteorder != "little":  # pragma: no cover - safetensors stores little-endian bytes
        raise LeadingTermsError("writing safetensors files needs a little-endian machine")
    arrays: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        t = torch.from_numpy(np.ascontiguousarray(t)) if isinstance(t, np.ndarray) else t
        arrays[name] = t.detach().cpu().contiguous()
    dtypes = {name: str(t.dtype).removeprefix("torch.") for name, t in arrays.items()}
    unknown = sorted({d for d in dtypes.values() if d not in _DTYPE_CODES})
    if unknown:
        raise LeadingTermsError(f"cannot write {Path(path).name}: tensors of dtype {', '.join(unknown)} are not "
                                "supported")
    names = sorted(arrays, key=lambda n: (-_DTYPE_RANK[dtypes[n]], n))
    header: dict[str, Any] = {"__metadata__": {"json": json.dumps(dict(metadata or {}))}}
    begin = 0
    for name in names:
        t = arrays[name]
        end = begin + t.numel() * t.element_size()
        header[name] = {"dtype": _DTYPE_CODES[dtypes[name]], "shape": list(t.shape),
                        "data_offsets": [begin, end]}
        begin = end
    blob = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    chunks: list[bytes | memoryview] = [len(blob).to_bytes(8, "little") + blob]
    chunks += [arrays[n].reshape(-1).view(torch.uint8).numpy().data for n in names if arrays[n].numel()]
    with ThreadPoolExecutor(1) as pool:  # hashing (no GIL held) next to the writes
        hashed = pool.submit(chunks_digest, chunks) if digest else None
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        return hashed.result() if hashed is not None else None


def load_tensors(
    path: str | os.PathLike[str], what: str = "tensor file"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load a safetensors file written by :func:`save_tensors` -> (tensors, metadata)."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise LeadingTermsError(f"{what} not found: {p}")
    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(p), framework="pt") as f:  # type: ignore[no-untyped-call]
            meta_raw = f.metadata() or {}
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
        meta = json.loads(meta_raw.get("json", "{}"))
    except Exception as exc:  # safetensors raises several types for corrupt headers
        raise LeadingTermsError(
            f"{what} is corrupt or not a safetensors file ({p}): {str(exc).splitlines()[0][:120]}"
        ) from None
    return tensors, meta


#: safetensors dtype codes -> numpy dtypes (BF16 is mapped as int16 and viewed as bfloat16)
_SAFETENSORS_DTYPES: dict[str, Any] = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.int16, "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def map_tensors(
    path: str | os.PathLike[str], what: str = "tensor file"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """:func:`load_tensors`, memory-mapped: every tensor is a copy-on-write view of the file.

    Nothing is read until it is used (a row of a (V, V) matrix touches only that row's pages), so
    opening a large basis costs a header parse. Writing to a tensor changes this process's copy,
    never the file. Same one-line errors as :func:`load_tensors` for a missing or corrupt file.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise LeadingTermsError(f"{what} not found: {p}")
    size = p.stat().st_size
    try:
        with open(p, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if size < 8 or not 0 < n <= size - 8:
                raise ValueError(f"header length {n} does not fit a file of {size} bytes")
            header = json.loads(fh.read(n))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        meta = json.loads((header.pop("__metadata__", None) or {}).get("json", "{}"))
        tensors: dict[str, torch.Tensor] = {}
        for name, info in header.items():
            dtype = np.dtype(_SAFETENSORS_DTYPES[info["dtype"]])
            shape = tuple(int(d) for d in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
            if end - begin != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize or 8 + n + end > size:
                raise ValueError(f"tensor {name!r} does not fit its data offsets")
            if end == begin:
                arr = np.zeros(shape, dtype=dtype)
            else:
                arr = np.memmap(p, dtype=dtype, mode="c", offset=8 + n + begin, shape=shape)
            t = torch.from_numpy(arr)
            tensors[name] = t.view(torch.bfloat16) if info["dtype"] == "BF16" else t
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError) as exc:
        raise LeadingTermsError(
            f"{what} is corrupt or not a safetensors file ({p}): {str(exc).splitlines()[0][:120]}"
        ) from None
    return tensors, meta


def folder_of(path: str | os.PathLike[str], files: tuple[str, ...]) -> Path:
    """A loader's folder: ``path`` itself, or its parent when ``path`` names one of the folder's ``files``
    (``load_basis(".../basis.safetensors")`` works like ``load_basis(".../")``)."""
    p = Path(path)
    return p.parent if p.name in files and not p.is_dir() else p


def disk_full_error(target: str | os.PathLike[str], needed: int | None = None, *,
                    remedy: str = "run the command again") -> LeadingTermsError:
    """The one-line error of a write into ``target`` (a file or folder) that hit a full disk or a file-size
    limit (:func:`is_disk_full`), naming the space the output needs when it is known, and ``remedy``
    (what to run once space is freed)."""
    from leadingterms.budget import format_bytes, free_disk_bytes

    need = f" (it needs about {format_bytes(needed)})" if needed else ""
    return LeadingTermsError(
        f"cannot write {target}: the disk is full or a file-size limit was reached{need}, "
        f"{format_bytes(free_disk_bytes(target))} free; free some space and {remedy} "
        "(nothing half-written is left; an earlier output is unchanged)")
