"""The run directory of ``leadingterms train``: layout, creating / continuing / replacing it, the
run's config record, and the full-corpus basis the run compares with.

RUN layout::

    RUN/config.json                 the TrainConfig, corpus hash, sizes, theory caveats
    RUN/metrics.jsonl               one row per logged step (see leadingterms.training.tracking)
    RUN/summary.json                validity horizon, final metrics, time, steps/s
    RUN/basis/                      full-corpus basis cache (unless --stats DIR is given)
    RUN/checkpoints/step_{s:06d}.*  weights + shadow + optimizer state (see .checkpoints)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from leadingterms.basis import Basis
from leadingterms.cache import reuse
from leadingterms.corpus.store import TokenStore
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import read_json, write_json
from leadingterms.training.checkpoints import CHECKPOINT_DIR
from leadingterms.training.config import TrainConfig, resume_mismatch
from leadingterms.training.tracking import METRICS_FILE

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
BASIS_DIR = "basis"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE)


def theory_caveats(cfg: TrainConfig) -> list[str]:
    """Settings under which the predictions (derived for SGD from zero) are not expected to hold."""
    out = []
    if cfg.optimizer != "sgd":
        out.append(f"optimizer {cfg.optimizer} is outside the theory (derived for SGD / GD)")
    if cfg.init != "zero":
        out.append(f"init {cfg.init} is outside the theory (derived for zero initialisation)")
    return out


def check_run_dir(cfg: TrainConfig) -> Path:
    """RUN, checked without writing anything: refuse an existing run without --resume/--force."""
    run = Path(cfg.out)
    if run.exists() and not run.is_dir():
        raise LeadingTermsError(f"--out {run} exists and is not a directory")
    nonempty = run.is_dir() and any(run.iterdir())
    if nonempty and not cfg.resume and not cfg.force:
        raise LeadingTermsError(
            f"run directory {run} already exists; pass --resume to continue it or --force to start over")
    return run


def prepare_run_dir(cfg: TrainConfig) -> Path:
    """Create RUN (after :func:`check_run_dir`); with --force, clear a previous run (not its basis cache)."""
    run = check_run_dir(cfg)
    if cfg.force and run.is_dir():
        for name in RUN_FILES:
            (run / name).unlink(missing_ok=True)
        shutil.rmtree(run / CHECKPOINT_DIR, ignore_errors=True)  # RUN/basis/ stays: it is hash-checked
    run.mkdir(parents=True, exist_ok=True)
    return run


def check_resume(cfg: TrainConfig, run: Path, store: TokenStore) -> bool:
    """True when there is a run to continue; refuse a different corpus or config."""
    if not (run / CONFIG_FILE).is_file():
        return False
    saved = read_json(run / CONFIG_FILE, what="run config")
    if saved.get("corpus_hash") != store.content_hash:
        raise LeadingTermsError(
            f"cannot resume {run}: it was trained on corpus {saved.get('corpus_hash')}, "
            f"{store.path} has hash {store.content_hash}")
    why = resume_mismatch(TrainConfig.from_json(saved.get("config", {})), cfg)
    if why:
        raise LeadingTermsError(f"cannot resume {run}: config differs from the saved run ({why})")
    return True


def saved_config(run: str | Path) -> dict[str, Any]:
    """The TrainConfig fields saved in RUN/config.json ({} when there is none)."""
    p = Path(run) / CONFIG_FILE
    if not p.is_file():
        return {}
    saved = read_json(p, what="run config")
    cfg = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(cfg, dict):
        raise LeadingTermsError(f"{p} is not a leadingterms train config (no 'config' object)")
    return cfg


def write_run_config(run: Path, cfg: TrainConfig, store: TokenStore, *, steps_per_epoch: int, total_steps: int,
                     model: dict[str, Any]) -> None:
    """RUN/config.json: what the run is, on which corpus (hash), at which sizes."""
    write_json(run / CONFIG_FILE, {
        "kind": "leadingterms.train",
        "config": cfg.to_json(),
        "corpus": str(store.path),
        "corpus_hash": store.content_hash,
        "V": store.V, "T": store.T, "N": store.N,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "model": model,
        "theory_caveats": theory_caveats(cfg),
    })


def basis_mismatch(basis: Basis, store: TokenStore) -> str | None:
    """None when ``basis`` holds the full-vocabulary statistics of ``store``, else why not."""
    h = basis.meta.get("corpus_hash")
    if basis.meta.get("top_k") is not None:
        return "it is a top-K basis; the model needs the statistics over the full vocabulary"
    if h is not None and h != store.content_hash:
        return f"it was computed from corpus {h}, {store.path} has hash {store.content_hash}"
    if (int(basis.V), int(basis.T)) != (store.V, store.T) or (h is None and int(basis.N) != store.N):
        return (f"its sizes (V={basis.V}, T={basis.T}, N={basis.N}) differ from the corpus "
                f"({store.V}, {store.T}, {store.N})")
    return None


def basis_cached(cfg: TrainConfig, store: TokenStore, run: Path) -> bool:
    """Whether :func:`run_basis` will read a basis (--stats, or a matching RUN/basis/) instead of computing one."""
    from leadingterms.basis.io import META_FILE

    if cfg.stats:
        return True
    meta = run / BASIS_DIR / META_FILE
    if not meta.is_file():
        return False
    try:
        saved = read_json(meta, what="basis metadata")
    except LeadingTermsError:
        return False
    return (isinstance(saved, dict) and saved.get("corpus_hash") == store.content_hash
            and saved.get("top_k") is None)


def run_basis(cfg: TrainConfig, store: TokenStore, run: Path, *, progress: bool) -> Basis:
    """The full-corpus basis: from --stats DIR, from the RUN/basis/ cache, or computed once into it."""
    from leadingterms.basis import compute_basis, load_basis, save_basis
    from leadingterms.basis.io import META_FILE

    if cfg.stats:
        basis = load_basis(cfg.stats)
        why = basis_mismatch(basis, store)
        if why:
            raise LeadingTermsError(f"--stats {cfg.stats} does not belong to --corpus {store.path}: {why}")
        return basis
    d = run / BASIS_DIR
    cached = reuse(d / META_FILE, {"corpus_hash": store.content_hash, "top_k": None}, lambda: load_basis(d))
    if cached is not None and basis_mismatch(cached, store) is None:
        return cached
    basis = compute_basis(store.tokens, store.V, vocab=store.vocab, progress=progress)
    save_basis(d, basis, extra_meta={"corpus_hash": store.content_hash, "corpus": str(store.path)})
    basis.meta.update(corpus_hash=store.content_hash, corpus=str(store.path))
    return basis
