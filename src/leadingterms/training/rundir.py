"""The run directory of ``leadingterms train``: layout, creating / continuing / replacing it, the
run's config record, and the full-corpus basis the run compares with.

RUN layout::

    RUN/config.json                 run_id, the TrainConfig, corpus (and basis) hash, sizes, theory caveats
                                    (schema-checked on every read: :func:`read_run_info`)
    RUN/.leadingterms.lock          held by the one process writing RUN (:func:`run_lock`)
    RUN/metrics.jsonl               one row per logged step (see leadingterms.training.tracking)
    RUN/summary.json                validity horizon, final metrics, time, steps/s
    RUN/basis/                      full-corpus basis cache (unless --stats DIR is given)
    RUN/checkpoints/step_{s:06d}.*  weights + shadow + optimizer state (see .checkpoints)
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from leadingterms.basis import Basis
from leadingterms.cache import reuse
from leadingterms.corpus.store import TokenStore
from leadingterms.errors import LeadingTermsError
from leadingterms.locks import LOCK_NAME, output_lock
from leadingterms.persist import TEMP_SUFFIX, read_json, write_json
from leadingterms.schema import BOOL, INT, NUMBER, OBJECT, POS_INT, STR, STR_LIST, Field, check_fields
from leadingterms.training.checkpoints import CHECKPOINT_DIR
from leadingterms.training.config import TrainConfig, resume_mismatch
from leadingterms.training.tracking import METRICS_FILE
from leadingterms.validate import out_folder

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
    run = out_folder(cfg.out)
    nonempty = run.is_dir() and any(not _bookkeeping(p) for p in run.iterdir())
    if nonempty and not cfg.resume and not cfg.force:
        raise LeadingTermsError(
            f"run directory {run} already exists; pass --resume to continue it or --force to start over")
    return run


def _bookkeeping(p: Path) -> bool:
    """The lock file and temp files of interrupted writes: not part of a run."""
    return p.name == LOCK_NAME or (p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX))


@contextlib.contextmanager
def run_lock(run: Path) -> Iterator[None]:
    """Hold RUN's write lock (one writer per run: a second ``train --out RUN`` gets one line naming the
    holder). A RUN folder this call created is removed again when the block fails before writing in it."""
    created = not run.exists()
    try:
        with output_lock(run, folder=True, what="run"):
            yield
    except BaseException:
        if created and run.is_dir() and all(_bookkeeping(p) for p in run.iterdir()):
            shutil.rmtree(run, ignore_errors=True)
        raise


def prepare_run_dir(cfg: TrainConfig) -> Path:
    """Create RUN (after :func:`check_run_dir`); with --force, clear a previous run (not its basis cache)."""
    from leadingterms.intervene import INTERVENTION_FILE
    from leadingterms.persist import remove_stale_temps

    run = check_run_dir(cfg)
    if cfg.force and run.is_dir():
        for name in (*RUN_FILES, INTERVENTION_FILE):  # the outputs of the run started over
            (run / name).unlink(missing_ok=True)
        shutil.rmtree(run / CHECKPOINT_DIR, ignore_errors=True)  # RUN/basis/ stays: it is hash-checked
    run.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(run / CHECKPOINT_DIR)  # of a killed checkpoint write (we hold RUN's lock)
    return run


def check_resume(cfg: TrainConfig, run: Path, store: TokenStore) -> bool:
    """True when there is a run to continue; refuse a different corpus or config (nothing is written)."""
    if not (run / CONFIG_FILE).is_file():
        return False
    saved = read_run_info(run)
    if saved["corpus_hash"] != store.content_hash:
        raise LeadingTermsError(
            f"cannot resume {run}: it was trained on corpus {saved['corpus_hash']}, "
            f"{store.path} has hash {store.content_hash}; resume with the run's own corpus, or start over "
            "with --force")
    why = resume_mismatch(info_config(saved, run / CONFIG_FILE), cfg)
    if why:
        raise LeadingTermsError(f"cannot resume {run}: config differs from the saved run ({why})")
    return True


def new_run_id() -> str:
    """A run's identity, recorded in RUN/config.json and every checkpoint (hex, 32 characters)."""
    return uuid.uuid4().hex


#: RUN/config.json: the fields every reader relies on.
RUN_INFO_FIELDS = {
    "config": OBJECT, "corpus_hash": STR, "V": POS_INT, "T": POS_INT, "N": POS_INT,
    "steps_per_epoch": POS_INT, "total_steps": POS_INT, "run_id": STR.or_null(), "basis_hash": STR.or_null(),
}
_FIX = "restore it from the run's checkpoints or retrain with --force"


def _field_schema(f: dataclasses.Field[Any]) -> Field:
    """The JSON type of a TrainConfig field, from its annotation."""
    base = {"int": INT, "float": NUMBER, "str": STR, "bool": BOOL, "tuple[str, ...]": STR_LIST}
    t = str(f.type).replace(" | None", "")
    kind = base.get(t, Field(lambda v: True, "anything"))
    return kind.or_null() if str(f.type).endswith("| None") else kind


def read_run_info(run: str | Path) -> dict[str, Any]:
    """RUN/config.json, schema-checked (types and required fields; one-line error naming the field)."""
    p = Path(run) / CONFIG_FILE
    info = read_json(p, what="run config")
    check_fields(info, RUN_INFO_FIELDS, where=p, fix=_FIX)
    info_config(info, p)
    return dict(info)


def info_config(info: dict[str, Any], where: Path) -> TrainConfig:
    """The TrainConfig in a run's config.json, each field type- and range-checked."""
    from leadingterms.config import check_config

    d = info.get("config")
    fields = {f.name: _field_schema(f) for f in dataclasses.fields(TrainConfig)}
    present = {k: v for k, v in fields.items() if isinstance(d, dict) and k in d}
    d = check_fields(d, present, where=f"{where} (config)", fix=_FIX)
    for name in ("layers", "lr", "batch_size"):
        check_fields(d, {name: fields[name]}, where=f"{where} (config)", fix=_FIX)
    try:
        cfg = TrainConfig.from_json(d)
        check_config(cfg)
    except LeadingTermsError as exc:
        raise LeadingTermsError(f"{where} is corrupt: {exc}; {_FIX}") from None
    except (TypeError, ValueError) as exc:
        raise LeadingTermsError(f"{where} is corrupt: {exc}; {_FIX}") from None
    return cfg


def saved_config(run: str | Path) -> dict[str, Any]:
    """The TrainConfig fields saved in RUN/config.json ({} when there is none; checked)."""
    p = Path(run) / CONFIG_FILE
    if not p.is_file():
        return {}
    return dict(read_run_info(run)["config"])


def write_run_config(run: Path, cfg: TrainConfig, store: TokenStore, *, steps_per_epoch: int, total_steps: int,
                     model: dict[str, Any], run_id: str | None = None,
                     basis_hash: str | None = None) -> None:
    """RUN/config.json: what the run is (its ``run_id``), on which corpus (hash) and basis, at which sizes."""
    write_json(run / CONFIG_FILE, {
        "kind": "leadingterms.train",
        "run_id": run_id,
        "config": cfg.to_json(),
        "corpus": str(store.path),
        "corpus_hash": store.content_hash,
        "basis_hash": basis_hash,
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
    """The full-corpus basis: from --stats DIR, from the RUN/basis/ cache, or computed once into it by
    ``leadingterms stats`` itself (the same shards, so the same bits as a basis made with it)."""
    from leadingterms.basis import StatsConfig, load_basis, run_stats
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
    return run_stats(StatsConfig(corpus=str(store.path), out=str(d), force=True, progress=progress)).basis
