"""The ``train`` stage: ``train(TrainConfig) -> RunResult``.

Validates the config and the corpus, estimates memory and disk and refuses in one line when they
would not fit (:mod:`.estimate`) -- all before writing anything --, prepares the run directory
(fresh, ``force`` or ``resume``; see :mod:`.rundir`), restores the last checkpoint when resuming,
times the first step and the first log and reports the estimate (``on_note``), runs the loop
(:mod:`.loop`) and writes RUN/summary.json. ``dry_run`` stops after the estimate, with nothing
written. The library returns notes (theory caveats, a resume with nothing to resume) instead of
printing them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadingterms.config import check_config
from leadingterms.corpus.store import check_ids_in_range, load_store
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import write_json
from leadingterms.progress import progress_enabled
from leadingterms.training.checkpoints import (
    CheckpointWriter,
    checkpoint_bytes,
    checkpoint_paths,
    list_checkpoints,
)
from leadingterms.training.config import TrainConfig
from leadingterms.training.data import DataOrder
from leadingterms.training.estimate import Estimate, check, plan
from leadingterms.training.loop import Diverged, Trainer, precision_context, run_steps
from leadingterms.training.rundir import (
    SUMMARY_FILE,
    basis_cached,
    check_resume,
    check_run_dir,
    new_run_id,
    prepare_run_dir,
    read_run_info,
    run_basis,
    run_lock,
    theory_caveats,
    write_run_config,
)
from leadingterms.training.tracking import (
    HORIZON_DEFINITION,
    METRICS_FILE,
    check_metrics_complete,
    horizon_summary,
    read_metrics,
    truncate_metrics,
    validity_horizon,
)
from leadingterms.validate import resolve_device

LOSS_DEFINITION = (
    "loss: mean cross-entropy of the weights after `step` updates over the training set "
    "(its first eval_sequences sequences: by default those of 2 optimizer steps, at most all); batch_loss: "
    "mean cross-entropy of the batch of update `step` at the weights before it (null at step 0); "
    "val_loss: over the first eval_sequences sequences of val_tokens.npy"
)
LAYER_SPREAD_DEFINITION = (
    "layer_spread[kind] = max over layers l of ||theta_l - mean_l theta||_F / ||mean_l theta||_F "
    "(kind V, W, P); null for one layer or a zero mean"
)


@dataclass
class RunResult:
    """What :func:`train` returns. ``final`` is the last metrics row, ``summary`` summary.json,
    ``estimate`` the estimate's lines (time, memory, disk; given to ``on_note`` before the first
    step). With ``dry_run`` only ``estimate`` is filled and nothing was written."""

    run_dir: Path
    steps: int
    final: dict[str, Any]
    summary: dict[str, Any]
    wall_s: float
    steps_per_s: float
    resumed_from: int | None
    notes: list[str] = field(default_factory=list)
    estimate: list[str] = field(default_factory=list)
    dry_run: bool = False


def train(cfg: TrainConfig, *, on_step: Callable[[int], None] | None = None,
          on_note: Callable[[str], None] | None = None) -> RunResult:
    """Train per ``cfg`` into ``cfg.out`` (fresh, ``force``, or ``resume``) -> :class:`RunResult`.

    ``on_note(line)`` receives the estimate's lines as soon as they are known (before the first step
    is applied). ``on_step(s)`` is called after step s is complete (logged and checkpointed where due);
    an exception raised there stops the run as a kill would (tests use it to simulate one).
    Raises LeadingTermsError (one line) on bad input, a refused resume, too little memory or disk,
    or divergence.
    """
    check_config(cfg)
    run = Path(cfg.out)
    with contextlib.nullcontext() if cfg.dry_run else run_lock(run):
        return _train(cfg, run, on_step=on_step, on_note=on_note)


def _train(cfg: TrainConfig, run: Path, *, on_step: Callable[[int], None] | None,
           on_note: Callable[[str], None] | None) -> RunResult:
    """:func:`train` while holding RUN's lock: every check first (corpus, run folder, resume compatibility,
    the checkpoint to resume from and the metrics before it, memory and disk), then the writes."""
    store = load_store(cfg.corpus)
    check_ids_in_range(store)
    check_run_dir(cfg)
    resuming = cfg.resume and check_resume(cfg, run, store)
    notes = theory_caveats(cfg)
    device = resolve_device(cfg.device)
    if cfg.precision == "tf32" and device.type != "cuda":
        notes.append("--precision tf32 affects CUDA matmuls only; on the CPU the model computes in float32")
    order = DataOrder(store.N, cfg.batch_size, cfg.grad_accum, cfg.seed)
    total = cfg.steps if cfg.steps is not None else int(cfg.epochs or 0) * order.steps_per_epoch
    ckpts = list_checkpoints(run) if resuming else []
    if resuming and not ckpts:
        raise LeadingTermsError(f"cannot resume {run}: it has no complete checkpoint to continue from; start it "
                                "over with --force")
    start = ckpts[-1] if ckpts else 0
    if start > total:
        raise LeadingTermsError(f"cannot resume {run}: it is at step {start}, beyond the requested {total} steps")
    if start > 0:
        check_metrics_complete(read_metrics(run, upto=start), log_every=cfg.log_every, upto=start,
                               where=run / METRICS_FILE)
    needs_basis = bool({"closed_form", "second_order"} & set(cfg.track))
    est = plan(cfg, V=store.V, T=store.T, N=store.N, start=start, total=total, device=device,
               basis_to_compute=needs_basis and not basis_cached(cfg, store, run))
    check(est, cfg.out)  # before allocating or writing anything
    show_progress = cfg.progress and progress_enabled()
    tr = Trainer(cfg, store, run)
    tr.run_id = read_run_info(run).get("run_id") if resuming else new_run_id()
    if not cfg.dry_run:
        if start > 0:
            tr.restore(start)  # the checkpoint loads, is finite and is this run's: before anything is written
        prepare_run_dir(cfg)
        basis_hash = None
        if needs_basis:
            basis = run_basis(cfg, store, run, progress=show_progress)
            basis_hash = basis.meta.get("basis_hash")
            tr.attach_basis(basis)
        (run / SUMMARY_FILE).unlink(missing_ok=True)
        write_run_config(run, cfg, store, steps_per_epoch=order.steps_per_epoch, total_steps=total,
                         model=tr.model_cfg.to_dict(), run_id=tr.run_id,
                         basis_hash=basis_hash if isinstance(basis_hash, str) else None)
        tr.writer = CheckpointWriter(run, keep_last=cfg.keep_last, early=cfg.early_checkpoints)
        if start > 0:
            truncate_metrics(run, start)
        else:
            if cfg.resume:
                notes.append(f"nothing to resume in {run}; starting from step 0")
            truncate_metrics(run, -1)
        tr.metrics_size = (run / METRICS_FILE).stat().st_size

    t0 = time.perf_counter()
    elapsed = lambda: tr.elapsed_before + time.perf_counter() - t0  # noqa: E731
    from tqdm.auto import tqdm

    pbar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True, leave=False,
                disable=not show_progress or cfg.dry_run)

    def progress(batch_loss: float) -> None:
        pbar.update(1)
        pbar.set_postfix(loss=f"{batch_loss:.4f}", refresh=False)

    failed = True
    try:
        with precision_context(cfg.precision, device):
            first = _start(cfg, tr, est, start, elapsed)
            for line in est.lines():
                if on_note is not None:
                    on_note(line)
            if cfg.dry_run:
                failed = False
                return RunResult(run_dir=run, steps=total, final={}, summary={}, wall_s=time.perf_counter() - t0,
                                 steps_per_s=0.0, resumed_from=start or None, notes=notes, estimate=est.lines(),
                                 dry_run=True)
            run_steps(tr, start, elapsed, on_step=on_step, progress=progress, first=first)
        failed = False
    except Diverged as d:
        pbar.close()
        _finish_writes(tr, failed=True)
        good = [s for s in list_checkpoints(run) if s < d.step]
        kept = f"last good checkpoint: {checkpoint_paths(run, good[-1])[0]}" if good else "no good checkpoint"
        write_json(run / SUMMARY_FILE, _summary(cfg, tr, run, est, start, elapsed(), time.perf_counter() - t0,
                                                diverged={"step": d.step, "reason": d.why}))
        raise LeadingTermsError(
            f"training diverged at step {d.step} ({d.why}); lower --lr (now {cfg.lr}); {kept}") from None
    finally:
        pbar.close()
        _finish_writes(tr, failed=failed)
    wall = time.perf_counter() - t0
    summary = _summary(cfg, tr, run, est, start, elapsed(), wall, diverged=None)
    write_json(run / SUMMARY_FILE, summary)
    return RunResult(run_dir=run, steps=total, final=summary["final"], summary=summary, wall_s=wall,
                     steps_per_s=summary["steps_per_s"], resumed_from=start if start > 0 else None, notes=notes,
                     estimate=est.lines())


def _start(cfg: TrainConfig, tr: Trainer, est: Estimate, start: int, elapsed: Callable[[], float]) -> Any:
    """Step 0's log and checkpoint (a fresh run) and the estimate's times: a fresh run times its step-0
    log and its first step (prepared, not yet applied: no work is wasted); a resumed run samples a log;
    a dry run samples both (one micro-batch, one chunk of the logged loss) -> the first step, prepared
    (None for a dry run or when there is nothing to run)."""
    if cfg.dry_run:
        est.timed = "one micro-batch timed, scaled"
        est.log_s = tr.time_log(0)  # no basis: its comparisons are against zero, of the same cost
        est.step_parts = tr.time_step(start) if start < tr.total else {}
        est.step_s = sum(est.step_parts.values())
        return None
    t = time.perf_counter()
    if start == 0:
        if tr.log(0, None)["loss"] is None:
            raise Diverged(0, "the initial loss is not finite")
        est.log_s = time.perf_counter() - t
    else:
        est.log_s = tr.time_log(start)
    first = None
    if start < tr.total:  # timed before step 0's checkpoint is being written in the background
        first = tr.prepare(start, timed=True)
        est.step_parts = dict(first.seconds)
        est.step_s = sum(first.seconds.values())
    else:
        est.step_s = 0.0
    if start == 0:
        tr.save(0, elapsed())  # the weights before the first update (prepare changed only gradients)
    return first


def _finish_writes(tr: Trainer, *, failed: bool) -> None:
    """Wait for the checkpoint in flight; while another error propagates, do not mask it."""
    if tr.writer is None:
        return
    try:
        tr.writer.wait()
    except Exception:
        if not failed:
            raise


def _summary(cfg: TrainConfig, tr: Trainer, run: Path, est: Estimate, start: int, elapsed_total: float,
             wall: float, diverged: dict[str, Any] | None) -> dict[str, Any]:
    metrics = read_metrics(run)
    # the horizons are never computed from a partial log
    check_metrics_complete(metrics, log_every=cfg.log_every, where=run / METRICS_FILE,
                           upto=tr.total if diverged is None else int(diverged["step"]) - 1)
    steps_done = (metrics[-1]["step"] if metrics else 0) - start
    return {
        "kind": "leadingterms.train.summary",
        "steps": tr.total,
        "epochs": tr.order.epoch_float(tr.total),
        "optimizer": cfg.optimizer,
        "init": cfg.init,
        "theory_caveats": theory_caveats(cfg),
        "diverged": diverged,
        "validity_horizon": validity_horizon(metrics),  # steps only, kept for older readers
        "horizon": horizon_summary(metrics, lr=cfg.lr, N=tr.order.N, batch_size=cfg.batch_size,
                                   grad_accum=cfg.grad_accum, tracked=cfg.track),
        "final": metrics[-1] if metrics else {},
        "wall_time_s": elapsed_total,
        "wall_time_this_process_s": wall,
        "steps_this_process": steps_done,
        "steps_per_s": steps_done / wall if wall > 0 else None,
        "resumed_from": start if start > 0 else None,
        "checkpoints": list_checkpoints(run),
        "checkpoint_bytes_written": tr.writer.bytes_written if tr.writer is not None else 0,
        "checkpoint_bytes_kept": checkpoint_bytes(run),
        "estimate": {"step_s": est.step_s, "log_s": est.log_s, "total_s": est.total_s,
                     "memory_bytes": est.memory_bytes, "disk_bytes": est.disk},
        "definitions": {"loss": LOSS_DEFINITION, "layer_spread": LAYER_SPREAD_DEFINITION,
                        "validity_horizon": HORIZON_DEFINITION,
                        "checkpoint_bytes_written": "bytes of the checkpoint files this process wrote "
                                                    "(pruned ones included)"},
    }
