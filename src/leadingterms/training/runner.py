"""The ``train`` stage: ``train(TrainConfig) -> RunResult``.

Validates the config and the corpus, prepares the run directory (fresh, ``force`` or ``resume``;
see :mod:`.rundir`), restores the last checkpoint when resuming, runs the loop (:mod:`.loop`)
and writes RUN/summary.json. The library returns notes (theory caveats, a resume with nothing to
resume) instead of printing them.
"""

from __future__ import annotations

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
from leadingterms.training.checkpoints import checkpoint_paths, list_checkpoints
from leadingterms.training.config import TrainConfig
from leadingterms.training.loop import Diverged, Trainer, run_steps
from leadingterms.training.rundir import (
    SUMMARY_FILE,
    check_resume,
    prepare_run_dir,
    run_basis,
    theory_caveats,
    write_run_config,
)
from leadingterms.training.tracking import (
    HORIZON_DEFINITION,
    horizon_summary,
    read_metrics,
    truncate_metrics,
    validity_horizon,
)

LOSS_DEFINITION = (
    "loss: mean cross-entropy of the weights after `step` updates over the training set "
    "(or its first eval_sequences sequences); batch_loss: mean cross-entropy of the batch of "
    "update `step` at the weights before it (null at step 0); val_loss: over val_tokens.npy"
)
LAYER_SPREAD_DEFINITION = (
    "layer_spread[kind] = max over layers l of ||theta_l - mean_l theta||_F / ||mean_l theta||_F "
    "(kind V, W, P); null for one layer or a zero mean"
)


@dataclass
class RunResult:
    """What :func:`train` returns. ``final`` is the last metrics row, ``summary`` summary.json."""

    run_dir: Path
    steps: int
    final: dict[str, Any]
    summary: dict[str, Any]
    wall_s: float
    steps_per_s: float
    resumed_from: int | None
    notes: list[str] = field(default_factory=list)


def train(cfg: TrainConfig, *, on_step: Callable[[int], None] | None = None) -> RunResult:
    """Train per ``cfg`` into ``cfg.out`` (fresh, ``force``, or ``resume``) -> :class:`RunResult`.

    ``on_step(s)`` is called after step s is complete (logged and checkpointed where due); an
    exception raised there stops the run as a kill would (tests use it to simulate one).
    Raises LeadingTermsError (one line) on bad input, a refused resume, or divergence.
    """
    check_config(cfg)
    store = load_store(cfg.corpus)
    check_ids_in_range(store)
    run = prepare_run_dir(cfg)
    resuming = cfg.resume and check_resume(cfg, run, store)
    notes = theory_caveats(cfg)
    show_progress = cfg.progress and progress_enabled()
    needs_basis = bool({"closed_form", "second_order"} & set(cfg.track))
    tr = Trainer(cfg, store, run, run_basis(cfg, store, run, progress=show_progress) if needs_basis else None)
    (run / SUMMARY_FILE).unlink(missing_ok=True)
    write_run_config(run, cfg, store, steps_per_epoch=tr.order.steps_per_epoch, total_steps=tr.total,
                     model=tr.model_cfg.to_dict())

    start = 0
    ckpts = list_checkpoints(run) if resuming else []
    if ckpts:
        start = ckpts[-1]
        if start > tr.total:
            raise LeadingTermsError(f"cannot resume {run}: it is at step {start}, beyond the requested "
                                    f"{tr.total} steps")
        tr.restore(start)
        truncate_metrics(run, start)
    else:
        if cfg.resume:
            notes.append(f"nothing to resume in {run}; starting from step 0")
        truncate_metrics(run, -1)

    t0 = time.perf_counter()
    elapsed = lambda: tr.elapsed_before + time.perf_counter() - t0  # noqa: E731
    from tqdm.auto import tqdm

    pbar = tqdm(total=tr.total, initial=start, desc="train", unit="step", dynamic_ncols=True, leave=False,
                disable=not show_progress)

    def progress(batch_loss: float) -> None:
        pbar.update(1)
        pbar.set_postfix(loss=f"{batch_loss:.4f}", refresh=False)

    try:
        run_steps(tr, start, elapsed, on_step=on_step, progress=progress)
    except Diverged as d:
        pbar.close()
        good = [s for s in list_checkpoints(run) if s < d.step]
        kept = f"last good checkpoint: {checkpoint_paths(run, good[-1])[0]}" if good else "no good checkpoint"
        write_json(run / SUMMARY_FILE, _summary(cfg, tr, run, start, elapsed(), time.perf_counter() - t0,
                                                diverged={"step": d.step, "reason": d.why}))
        raise LeadingTermsError(
            f"training diverged at step {d.step} ({d.why}); lower --lr (now {cfg.lr}); {kept}") from None
    finally:
        pbar.close()
    wall = time.perf_counter() - t0
    summary = _summary(cfg, tr, run, start, elapsed(), wall, diverged=None)
    write_json(run / SUMMARY_FILE, summary)
    return RunResult(run_dir=run, steps=tr.total, final=summary["final"], summary=summary, wall_s=wall,
                     steps_per_s=summary["steps_per_s"], resumed_from=start if start > 0 else None, notes=notes)


def _summary(cfg: TrainConfig, tr: Trainer, run: Path, start: int, elapsed_total: float, wall: float,
             diverged: dict[str, Any] | None) -> dict[str, Any]:
    metrics = read_metrics(run)
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
        "definitions": {"loss": LOSS_DEFINITION, "layer_spread": LAYER_SPREAD_DEFINITION,
                        "validity_horizon": HORIZON_DEFINITION},
    }
