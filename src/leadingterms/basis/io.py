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
from leadingterms.provenance import file_record, text_digest, verify_file
from leadingterms.schema import OBJECT, POS_INT, STR, STR_LIST, Field, check_fields, check_that
from leadingterms.validate import all_finite

TENSORS_FILE = "basis.safetensors"
META_FILE = "basis.json"
BASIS_FORMAT = 1
BASIS_TENSORS = ("B_bar", "Phi_bar", "Q_bar", "Delta", "Pi", "A_bar")
EXTRA_TENSORS = ("interchange_next", "interchange_prev", "G_bar")
_HEADER_KEYS = ("N", "T", "V", "corpus_hash")
#: The fields of basis.json a reader relies on (``files``, ``basis_hash``: absent in older bases).
BASIS_FIELDS: dict[str, Field] = {
    "N": POS_INT, "T": POS_INT, "V": POS_INT, "corpus_hash": STR.or_null(), "vocab": STR_LIST.or_null(),
    "tensors": STR_LIST.or_null(), "files": OBJECT.or_null(), "basis_hash": STR.or_null(),
}


def recompute_hint(p: Path) -> str:
    return f"recompute it with `leadingterms stats --corpus DIR --out {p} --force`"


def check_finite(tensors: dict[str, torch.Tensor], where: str | Path, fix: str) -> None:
    """One-line error naming the first tensor holding NaN or inf (issue 10: finite tensors)."""
    for name, t in tensors.items():
        if not all_finite(t):
            bad = int((~torch.isfinite(t)).sum())
            raise LeadingTermsError(f"{where} is corrupt: {name} holds {bad} NaN or infinite values; {fix}")


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
    check_finite(tensors, "the computed basis", "check the token store and the dtype")
    header: dict[str, Any] = {"N": basis.N, "T": basis.T, "V": basis.V, "corpus_hash": meta.get("corpus_hash")}
    full = {"format": BASIS_FORMAT, **header,
            **{k: v for k, v in meta.items() if k not in header and k not in ("files", "basis_hash")}}
    full["tensors"] = list(tensors)
    full["vocab"] = basis.vocab
    if basis.vocab is not None:
        header["vocab_hash"] = text_digest(list(basis.vocab))
    digest = save_tensors(out / TENSORS_FILE, tensors, header, digest=True)
    record = file_record(out / TENSORS_FILE, digest)
    full["files"] = {TENSORS_FILE: record}
    full["basis_hash"] = record["blake2b"]  # what a run or a prediction made from this basis records
    write_json(out / META_FILE, full)
    basis.meta.update(files=full["files"], basis_hash=full["basis_hash"])


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
    fix = recompute_hint(p)
    check_fields(meta, BASIS_FIELDS, where=p / META_FILE, fix=fix)
    verified = isinstance(meta.get("files"), dict) and TENSORS_FILE in meta["files"]
    if verified:
        verify_file(p / TENSORS_FILE, meta["files"][TENSORS_FILE], what=f"basis {p}", fix=fix)
    tensors, header = (map_tensors if mmap else load_tensors)(p / TENSORS_FILE, what="basis tensor file")
    N, T, V = int(meta["N"]), int(meta["T"]), int(meta["V"])
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
    if vocab is not None:
        check_that(len(vocab) == V, p / META_FILE, f"field 'vocab' has {len(vocab)} tokens, not V={V}", fix)
        if header.get("vocab_hash") is not None:
            check_that(text_digest(vocab) == header["vocab_hash"], p / META_FILE,
                       f"field 'vocab' differs from the vocabulary the basis was computed with (its hash is "
                       f"{text_digest(vocab)}, {TENSORS_FILE} records {header['vocab_hash']})", fix)
    if not (mmap and verified):  # a verified file is the one save_basis checked; otherwise look
        check_finite(tensors, p / TENSORS_FILE, fix)
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
