"""Atomic writes and safetensors + JSON persistence.

Every file the project writes goes through here: temp file in the same directory, then
``os.replace``, so an interrupted run never leaves a half-written file behind.
Tensors are stored with safetensors (never pickle); metadata as JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from leadingterms.errors import LeadingTermsError

if TYPE_CHECKING:  # torch is imported where tensors are written or read, not by every caller of atomic_path
    import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


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


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor | np.ndarray],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Atomically write ``tensors`` to a safetensors file.

    ``metadata`` (any JSON-serialisable mapping) is stored in the safetensors header under
    the key ``"json"``.
    """
    import torch
    from safetensors.torch import save_file

    out = {
        name: (torch.from_numpy(np.ascontiguousarray(t)) if isinstance(t, np.ndarray) else t)
        .detach()
        .cpu()
        .contiguous()
        for name, t in tensors.items()
    }
    header = {"json": json.dumps(dict(metadata or {}))}
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata=header)


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


def folder_of(path: str | os.PathLike[str], files: tuple[str, ...]) -> Path:
    """A loader's folder: ``path`` itself, or its parent when ``path`` names one of the folder's ``files``
    (``load_basis(".../basis.safetensors")`` works like ``load_basis(".../")``)."""
    p = Path(path)
    return p.parent if p.name in files and not p.is_dir() else p
