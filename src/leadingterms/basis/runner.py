"""The ``stats`` stage: token store -> ``OUT/basis.safetensors`` + ``OUT/basis.json``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from leadingterms.basis.io import EXTRA_TENSORS, META_FILE, load_basis, save_basis, saved_tensor_names
from leadingterms.basis.stats import DTYPES, compute_basis
from leadingterms.basis.types import Basis
from leadingterms.corpus.store import load_store
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import read_json


@dataclass
class StatsConfig:
    """``corpus``: token store dir; ``out``: basis dir; ``dtype``: accumulation/storage dtype;
    ``top_k``: restrict to the K most frequent tokens + ``<other>``; ``extras``: also save
    B̄ᵀB̄, B̄B̄ᵀ, Ḡ; ``force``: recompute even if ``out`` holds a basis of the same corpus."""

    corpus: Path
    out: Path
    dtype: str = "float64"
    top_k: int | None = None
    extras: bool = False
    force: bool = False
    progress: bool = True


def _reusable(cfg: StatsConfig, corpus_hash: str) -> bool:
    """True when ``cfg.out`` already holds a basis of this corpus with the same settings."""
    meta_path = Path(cfg.out) / META_FILE
    if cfg.force or not meta_path.is_file():
        return False
    try:
        meta = read_json(meta_path, what="basis metadata")
    except LeadingTermsError:
        return False
    if not isinstance(meta, dict):
        return False
    same = (meta.get("corpus_hash") == corpus_hash and meta.get("dtype") == cfg.dtype
            and meta.get("top_k_requested") == cfg.top_k)
    have_extras = all(n in saved_tensor_names(cfg.out) for n in EXTRA_TENSORS)
    return bool(same and (have_extras or not cfg.extras))


def run_stats(cfg: StatsConfig) -> tuple[Basis, bool]:
    """Compute (or reuse) the basis of the store at ``cfg.corpus``; returns (basis, reused)."""
    if cfg.dtype not in DTYPES:
        raise LeadingTermsError(f"unknown dtype {cfg.dtype!r}; use float64 or float32")
    store = load_store(cfg.corpus)
    if _reusable(cfg, store.content_hash):
        try:
            return load_basis(cfg.out, expected_hash=store.content_hash), True
        except LeadingTermsError as exc:
            print(f"existing basis in {cfg.out} is unusable ({exc}); recomputing", file=sys.stderr)
    # saving serialises the V×V tensors in memory (4, or 7 with extras) next to 3 extra products
    basis = compute_basis(store.tokens, store.V, dtype=DTYPES[cfg.dtype], vocab=store.vocab,
                          progress=cfg.progress, top_k=cfg.top_k, reserve_matrices=6 if cfg.extras else 3)
    save_basis(cfg.out, basis, {"corpus_hash": store.content_hash, "corpus": str(store.path),
                                "top_k_requested": cfg.top_k}, extras=cfg.extras)
    basis.meta.update(corpus_hash=store.content_hash, corpus=str(store.path), top_k_requested=cfg.top_k)
    return basis, False
