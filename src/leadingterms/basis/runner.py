"""The ``stats`` stage: token store -> ``OUT/basis.safetensors`` + ``OUT/basis.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from leadingterms.basis.io import EXTRA_TENSORS, META_FILE, load_basis, save_basis
from leadingterms.basis.stats import compute_basis
from leadingterms.basis.types import Basis
from leadingterms.cache import reuse
from leadingterms.config import check_config, option
from leadingterms.corpus.store import load_store
from leadingterms.validate import DTYPE_NAMES, parse_dtype, positive_int


@dataclass(kw_only=True)
class StatsConfig:
    """``leadingterms stats``: every docs/theory.md §2 statistic of a token store, exactly."""

    corpus: str = option(help="token store folder (from `leadingterms corpus`)", metavar="DIR")
    out: str = option(help="basis folder to create (basis.safetensors + basis.json)", metavar="DIR")
    dtype: str = option("float64", help="accumulation and storage dtype", choices=DTYPE_NAMES)
    top_k: int | None = option(None, help="keep the K most frequent tokens, map the rest to <other> (id K)",
                               metavar="K", check=positive_int)
    extras: bool = option(False, help="also save interchange_next (B̄ᵀB̄), interchange_prev (B̄B̄ᵀ) and G_bar")
    force: bool = option(False, help="recompute even if OUT holds a basis of the same corpus and settings")
    progress: bool = option(True, help="progress bars", cli=False)


@dataclass
class StatsResult:
    """The basis, whether an existing one was reused, and notes for the user."""

    basis: Basis
    path: Path  # the basis folder
    reused: bool
    notes: list[str] = field(default_factory=list)


def run_stats(cfg: StatsConfig) -> StatsResult:
    """Compute (or reuse) the basis of the store at ``cfg.corpus`` into ``cfg.out``."""
    check_config(cfg)
    store = load_store(cfg.corpus)
    notes: list[str] = []
    wanted = {"corpus_hash": store.content_hash, "dtype": cfg.dtype, "top_k_requested": cfg.top_k}
    has_extras = lambda meta: not cfg.extras or all(n in (meta.get("tensors") or []) for n in EXTRA_TENSORS)  # noqa: E731
    basis = reuse(Path(cfg.out) / META_FILE, wanted, lambda: load_basis(cfg.out, expected_hash=store.content_hash),
                  force=cfg.force, accept=has_extras, notes=notes)
    if basis is not None:
        return StatsResult(basis, Path(cfg.out), True, notes)
    # saving serialises the V×V tensors in memory (4, or 7 with extras) next to 3 extra products
    basis = compute_basis(store.tokens, store.V, dtype=parse_dtype(cfg.dtype), vocab=store.vocab,
                          progress=cfg.progress, top_k=cfg.top_k, reserve_matrices=6 if cfg.extras else 3)
    provenance = {"corpus_hash": store.content_hash, "corpus": str(store.path), "top_k_requested": cfg.top_k}
    save_basis(cfg.out, basis, provenance, extras=cfg.extras)
    basis.meta.update(provenance)
    return StatsResult(basis, Path(cfg.out), False, notes)
