"""``DIR/basis.safetensors`` (tensors) + ``DIR/basis.json`` (vocab, sizes, provenance).

Tensors: ``B_bar``, ``Phi_bar``, ``Q_bar``, ``Delta``, ``Pi``, ``A_bar`` and, when saved with
``extras=True``, ``interchange_next`` (B̄ᵀB̄), ``interchange_prev`` (B̄B̄ᵀ) and ``G_bar``.
basis.json: ``format``, ``N``, ``T``, ``V``, ``dtype``, ``corpus_hash`` (the token store's
``content_hash``), ``top_k``, ``token_ids``, ``seconds``, ``peak_memory_bytes``, ``tensors``,
``vocab`` and whatever the caller adds. The safetensors header repeats N, T, V, corpus_hash so
that a basis.json from another run is detected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from leadingterms.basis.types import Basis
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import folder_of, load_tensors, map_tensors, read_json, save_tensors, write_json

TENSORS_FILE = "basis.safetensors"
META_FILE = "basis.json"
BASIS_FORMAT = 1
BASIS_TENSORS = ("B_bar", "Phi_bar", "Q_bar", "Delta", "Pi", "A_bar")
EXTRA_TENSORS = ("interchange_next", "interchange_prev", "G_bar")
_HEADER_KEYS = ("N", "T", "V", "corpus_hash")


def extra_tensors(basis: Basis) -> dict[str, torch.Tensor]:
    """B̄ᵀB̄, B̄B̄ᵀ and Ḡ (each (V, V)) under their file names."""
    return {
        "interchange_next": basis.interchange_next(),
        "interchange_prev": basis.interchange_prev(),
        "G_bar": basis.G_bar(),
    }


def save_basis(out_dir: str | Path, basis: Basis, extra_meta: dict[str, Any] | None = None, *,
               extras: bool = False) -> None:
    """Write ``basis`` to ``out_dir`` atomically (tensors first, basis.json last)."""
    out = Path(out_dir)
    meta: dict[str, Any] = dict(basis.meta)
    meta.update(extra_meta or {})
    tensors = {name: getattr(basis, name) for name in BASIS_TENSORS}
    if extras:
        tensors.update(extra_tensors(basis))
    header = {"N": basis.N, "T": basis.T, "V": basis.V, "corpus_hash": meta.get("corpus_hash")}
    full = {"format": BASIS_FORMAT, **header, **{k: v for k, v in meta.items() if k not in header}}
    full["tensors"] = list(tensors)
    full["vocab"] = basis.vocab
    save_tensors(out / TENSORS_FILE, tensors, header)
    write_json(out / META_FILE, full)


def load_basis(path: str | Path, expected_hash: str | None = None, *, mmap: bool = False) -> Basis:
    """Load a basis written by :func:`save_basis`; one-line errors for missing/corrupt/mismatched files.

    ``mmap``: memory-map the tensors (:func:`leadingterms.persist.map_tensors`) instead of reading
    them: opening costs a header parse and a readout touches only the rows it uses.

    ``path``: the basis folder, or its basis.safetensors / basis.json. ``expected_hash``: the token
    store's ``content_hash``; a basis of another corpus is refused.
    """
    p = folder_of(path, (TENSORS_FILE, META_FILE))
    if not p.is_dir():
        raise LeadingTermsError(
            f"basis not found: {p} (make one with `leadingterms stats --corpus DIR --out {p}`)")
    meta = read_json(p / META_FILE, what="basis metadata")
    if not isinstance(meta, dict) or any(k not in meta for k in ("N", "T", "V")):
        raise LeadingTermsError(f"basis metadata {p / META_FILE} is corrupt: it lacks N, T or V")
    tensors, header = (map_tensors if mmap else load_tensors)(p / TENSORS_FILE, what="basis tensor file")
    try:
        N, T, V = int(meta["N"]), int(meta["T"]), int(meta["V"])
    except (TypeError, ValueError):
        raise LeadingTermsError(f"basis metadata {p / META_FILE} is corrupt: N, T, V are not integers") from None
    for key in _HEADER_KEYS:
        if header.get(key) != meta.get(key):
            raise LeadingTermsError(
                f"basis in {p} is inconsistent: {key} is {meta.get(key)!r} in {META_FILE} but "
                f"{header.get(key)!r} in {TENSORS_FILE}; recompute it with `leadingterms stats`")
    shapes = {"Delta": (T,), "Pi": (V,)}
    for name in BASIS_TENSORS + tuple(n for n in EXTRA_TENSORS if n in tensors):
        if name not in tensors:
            raise LeadingTermsError(f"basis tensor file {p / TENSORS_FILE} lacks {name}")
        want = shapes.get(name, (V, V))
        if tuple(tensors[name].shape) != want:
            raise LeadingTermsError(
                f"basis in {p} is corrupt: {name} has shape {tuple(tensors[name].shape)}, expected {want}")
    vocab = meta.get("vocab")
    if vocab is not None and (not isinstance(vocab, list) or len(vocab) != V):
        raise LeadingTermsError(f"basis metadata {p / META_FILE} is corrupt: vocab does not have V={V} entries")
    if expected_hash is not None and meta.get("corpus_hash") != expected_hash:
        raise LeadingTermsError(
            f"basis in {p} was computed from corpus {meta.get('corpus_hash')}, not {expected_hash}; "
            f"recompute it with `leadingterms stats --out {p}`")
    rest = {k: v for k, v in meta.items() if k not in ("format", "N", "T", "V", "vocab", "tensors")}
    basis = Basis(B_bar=tensors["B_bar"], Phi_bar=tensors["Phi_bar"], Q_bar=tensors["Q_bar"],
                  Delta=tensors["Delta"], Pi=tensors["Pi"], A_bar=tensors["A_bar"], N=N, T=T, V=V,
                  vocab=None if vocab is None else [str(v) for v in vocab], meta=rest)
    if "G_bar" in tensors and not mmap:
        basis._cache["M"] = tensors["G_bar"].T.contiguous()
    return basis


def saved_tensor_names(path: str | Path) -> list[str]:
    """Names listed in ``path/basis.json`` (empty when there is no readable basis)."""
    try:
        meta = read_json(Path(path) / META_FILE, what="basis metadata")
    except LeadingTermsError:
        return []
    names = meta.get("tensors") if isinstance(meta, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else []
