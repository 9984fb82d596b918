"""The ``stats`` stage: token store -> ``OUT/basis.safetensors`` + ``OUT/basis.json``.

A map-reduce over the store's shards (:mod:`leadingterms.basis.shards`): in this process by
default, on a local Dask cluster with ``--workers N`` or on a running one with ``--scheduler``;
the per-shard kernel runs on ``--device``. A killed run resumes from its checkpoints in
``OUT/.partial`` (removed once the basis is saved).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from leadingterms.basis import native
from leadingterms.basis.buffers import release_task_buffers
from leadingterms.basis.io import EXTRA_TENSORS, META_FILE, load_basis, save_basis
from leadingterms.basis.shards import (
    DEFAULT_SHARD_TOKENS,
    PARTIAL_DIR,
    ResumablePasses,
    checkpoint_key,
    store_pieces,
    survey,
)
from leadingterms.basis.stats import check_basis_memory, chunk_rows_for, kernel_name, reduce_basis
from leadingterms.basis.types import Basis
from leadingterms.budget import check_disk
from leadingterms.cache import refuse_other, reuse
from leadingterms.config import check_config, option
from leadingterms.corpus.store import load_store
from leadingterms.distributed import ParallelConfig, open_engine
from leadingterms.errors import LeadingTermsError
from leadingterms.locks import new_output
from leadingterms.validate import (
    DTYPE_NAMES,
    device_spec,
    nonnegative_int,
    out_folder,
    parse_dtype,
    positive_int,
    resolve_device,
)

CHECKPOINT_FORMAT = 1


def _seconds(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise LeadingTermsError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


@dataclass(kw_only=True)
class StatsConfig(ParallelConfig):
    """``leadingterms stats``: every docs/theory.md §2 statistic of a token store, exactly."""

    corpus: str = option(help="token store folder (from `leadingterms corpus`)", metavar="DIR")
    out: str = option(help="basis folder to create (basis.safetensors + basis.json)", metavar="DIR")
    dtype: str = option("float64", help="accumulation and storage dtype", choices=DTYPE_NAMES)
    top_k: int | None = option(None, help="keep the K most frequent tokens, map the rest to <other> (id K)",
                               metavar="K", check=positive_int)
    extras: bool = option(False, help="also save interchange_next (B̄ᵀB̄), interchange_prev (B̄B̄ᵀ) and G_bar")
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto", check=device_spec)
    force: bool = option(False, help="recompute even if OUT holds a basis of the same corpus and settings")
    progress: bool = option(True, help="progress bars", cli=False)
    shard_tokens: int = option(DEFAULT_SHARD_TOKENS, help="tokens per shard of the computation: a task, and the "
                               "grain of resuming (default 4M, a few seconds of work; fewer, larger shards where "
                               "the vocabulary is large for the store)", metavar="N",
                               check=positive_int)
    checkpoint_seconds: float = option(30.0, help="seconds between checkpoints of the running sums", cli=False,
                                       check=_seconds)
    chunk_rows: int | None = option(None, help="rows per chunk of the kernel (default from T)", cli=False,
                                    check=nonnegative_int)


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
    out = out_folder(cfg.out)
    store = load_store(cfg.corpus)
    notes: list[str] = []
    if cfg.top_k is not None and cfg.top_k >= store.V:  # the same basis as without it (and reused as such)
        notes.append(f"--top-k {cfg.top_k} keeps every one of the store's V={store.V} tokens: the full basis")
        cfg = replace(cfg, top_k=None)
    wanted = {"corpus_hash": store.content_hash, "dtype": cfg.dtype, "top_k_requested": cfg.top_k}
    has_extras = lambda meta: not cfg.extras or all(n in (meta.get("tensors") or []) for n in EXTRA_TENSORS)  # noqa: E731
    basis = reuse(out / META_FILE, wanted, lambda: load_basis(cfg.out, expected_hash=store.content_hash),
                  force=cfg.force, accept=has_extras, notes=notes)
    if basis is not None:
        return StatsResult(basis, out, True, notes)
    claim = lambda: refuse_other(out / META_FILE, wanted, force=cfg.force, what="the basis in")  # noqa: E731
    claim()  # again once the lock is held
    device = str(resolve_device(cfg.device))
    V_out = min(store.V, (cfg.top_k or store.V) + 1)
    check_disk(out, (7 if cfg.extras else 4) * V_out * V_out * parse_dtype(cfg.dtype).itemsize, "the basis")
    pieces = store_pieces(store.tokens, store.V, cfg.shard_tokens)
    if cfg.scheduler is None and cfg.workers > len(pieces):  # a worker thread more would hold sums and wait
        notes.append(f"the store makes {len(pieces)} shard{'s' if len(pieces) > 1 else ''} of the computation: "
                     f"{len(pieces)} worker{'s' if len(pieces) > 1 else ''}, not {cfg.workers}")
        cfg = replace(cfg, workers=len(pieces))
    # before the engine starts: local worker threads hold their own sums in this process
    check_basis_memory(V_out, store.T, parse_dtype(cfg.dtype), 6 if cfg.extras else 3,
                       tasks=cfg.workers if cfg.scheduler is None else 0)
    with new_output(out, what="basis folder", claim=claim):
        return _compute(cfg, store, pieces, out, device, notes)


def _warm_kernels(cfg: StatsConfig, V: int, device: str) -> threading.Thread | None:
    """Load the compiled kernels in a thread while the engine starts and the store is read, where the tasks
    run in this process (:func:`leadingterms.basis.native.warm`)."""
    if cfg.scheduler is not None or kernel_name(device) != "native":
        return None
    def warm() -> None:
        with contextlib.suppress(Exception):  # a kernel that cannot load fails in the first task, with its error
            native.warm(parse_dtype(cfg.dtype), V)

    thread = threading.Thread(target=warm, name="warm-kernels")
    thread.start()
    return thread


def _compute(cfg: StatsConfig, store: Any, pieces: list[Any], out: Path, device: str, notes: list[str]
             ) -> StatsResult:
    """The map-reduce over ``pieces`` and the save, holding the output lock of ``out``."""
    chunk_rows = cfg.chunk_rows or chunk_rows_for(store.T)
    warming = _warm_kernels(cfg, store.V, device)
    with open_engine(cfg, warm=("leadingterms.basis.stats",), releases_gil=True) as engine:
        # every id checked before anything is written
        hashes, counts = survey(pieces, store.V, progress=cfg.progress, engine=engine)
        key = checkpoint_key({"format": CHECKPOINT_FORMAT, "corpus_hash": store.content_hash, "shards": hashes,
                              "V": store.V, "dtype": cfg.dtype, "top_k": cfg.top_k, "chunk_rows": chunk_rows,
                              "device": device.split(":")[0], "kernel": kernel_name(device)})
        passes = ResumablePasses(engine, out / PARTIAL_DIR, key, interval_s=cfg.checkpoint_seconds,
                                 progress=cfg.progress, notes=notes)
        # saving serialises the V×V tensors in memory (4, or 7 with extras) next to 3 extra products
        basis = reduce_basis(pieces, store.V, dtype=parse_dtype(cfg.dtype), vocab=store.vocab,
                             progress=cfg.progress, top_k=cfg.top_k, chunk_rows=chunk_rows,
                             reserve_matrices=6 if cfg.extras else 3, device=device, counts=counts,
                             run_pass=passes, tasks_here=engine.tasks_here)
        try:  # worker processes keep their tasks' buffers until told
            engine.run_on_workers(release_task_buffers)
        except LeadingTermsError as exc:
            notes.append(f"the workers' buffers were not freed ({exc})")
        engine_name = engine.name
    if warming is not None:
        warming.join()
    provenance = {"corpus_hash": store.content_hash, "corpus": str(store.path), "top_k_requested": cfg.top_k,
                  "engine": engine_name, "shards_resumed": passes.resumed, "shards_computed": passes.computed}
    save_basis(cfg.out, basis, provenance, extras=cfg.extras)
    passes.clear()
    basis.meta.update(provenance)
    return StatsResult(basis, out, False, notes)
