"""The training runner: ``train(cfg) -> RunResult``.

RUN layout::

    RUN/config.json                       the TrainConfig, corpus hash, sizes, theory caveats
    RUN/metrics.jsonl                     one row per logged step (see leadingterms.training.tracking)
    RUN/summary.json                      validity horizon, final metrics, time, steps/s
    RUN/basis/                            full-corpus basis cache (unless --stats DIR is given)
    RUN/checkpoints/step_{s:06d}.*        weights + shadow + optimizer state (see .checkpoints)

Order of work per optimizer step s -> s+1: the step's micro-batches (data order, see .data)
are forwarded and back-propagated with weights |b_k|/|b| (so the accumulated gradient is that
of the mean loss over the union batch), the optimizer updates, the shadow (SPEC §5) is updated
with the union batch; then, if s+1 is a logged step, a metrics row is appended, and if it is
a checkpoint step, a checkpoint is written. A killed run therefore resumes from its last
checkpoint, and metrics.jsonl is cut back to that step first: the continued run writes the
same bytes as an uninterrupted one (on CPU; CUDA kernels need not be deterministic).
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leadingterms.corpus.store import TokenStore, check_ids_in_range, load_store
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import check_memory, read_json, write_json
from leadingterms.progress import progress_enabled, resolve_device
from leadingterms.training.checkpoints import (
    CHECKPOINT_DIR,
    checkpoint_paths,
    is_log_spaced,
    list_checkpoints,
    load_checkpoint_raw,
    load_optimizer,
    optimizer_tensors,
    prune_checkpoints,
    save_checkpoint,
)
from leadingterms.training.config import TrainConfig, resume_mismatch, validate
from leadingterms.training.data import DataOrder
from leadingterms.training.tracking import (
    METRICS_FILE,
    append_metrics,
    clean_comparison,
    finite_or_none,
    layer_spread,
    read_metrics,
    second_order_keys,
    truncate_metrics,
    validity_horizon,
)

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
BASIS_DIR = "basis"
_RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE)

LOSS_DEFINITION = (
    "loss: mean cross-entropy of the weights after `step` updates over the training set "
    "(or its first eval_sequences sequences); batch_loss: mean cross-entropy of the batch of "
    "update `step` at the weights before it (null at step 0); val_loss: over val_tokens.npy"
)
LAYER_SPREAD_DEFINITION = (
    "layer_spread[kind] = max over layers l of ||theta_l - mean_l theta||_F / ||mean_l theta||_F "
    "(kind V, W, P); null for one layer or a zero mean"
)
HORIZON_DEFINITION = (
    "validity_horizon[kind][weight][t] = first logged step at which rel = ||learned - predicted||_F "
    "/ ||learned||_F exceeds t; null = never within the run"
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


def theory_caveats(cfg: TrainConfig) -> list[str]:
    """Settings under which the predictions (derived for SGD from zero) are not expected to hold."""
    out = []
    if cfg.optimizer != "sgd":
        out.append(f"optimizer {cfg.optimizer} is outside the theory (derived for SGD / GD)")
    if cfg.init != "zero":
        out.append(f"init {cfg.init} is outside the theory (derived for zero initialisation)")
    return out


# ----------------------------------------------------------------------------- run directory


def _prepare_run_dir(cfg: TrainConfig) -> Path:
    """Create RUN or check it may be used: refuse an existing run without --resume/--overwrite."""
    run = Path(cfg.out)
    if run.exists() and not run.is_dir():
        raise LeadingTermsError(f"--out {run} exists and is not a directory")
    nonempty = run.is_dir() and any(run.iterdir())
    if nonempty and not cfg.resume and not cfg.overwrite:
        raise LeadingTermsError(
            f"run directory {run} already exists; pass --resume to continue it or --overwrite to start over"
        )
    if cfg.overwrite and run.is_dir():
        for name in _RUN_FILES:
            (run / name).unlink(missing_ok=True)
        shutil.rmtree(run / CHECKPOINT_DIR, ignore_errors=True)  # RUN/basis/ stays: it is hash-checked
    run.mkdir(parents=True, exist_ok=True)
    return run


def _check_resume(cfg: TrainConfig, run: Path, store: TokenStore) -> bool:
    """True when there is a run to continue; refuse a different corpus or config."""
    if not (run / CONFIG_FILE).is_file():
        return False
    saved = read_json(run / CONFIG_FILE, what="run config")
    if saved.get("corpus_hash") != store.content_hash:
        raise LeadingTermsError(
            f"cannot resume {run}: it was trained on corpus {saved.get('corpus_hash')}, "
            f"{store.path} has hash {store.content_hash}"
        )
    why = resume_mismatch(TrainConfig.from_json(saved.get("config", {})), cfg)
    if why:
        raise LeadingTermsError(f"cannot resume {run}: config differs from the saved run ({why})")
    return True


# ----------------------------------------------------------------------------- basis


def _basis_corpus_hash(basis: Any) -> str | None:
    meta = getattr(basis, "meta", None) or {}
    h = meta.get("corpus_hash") or meta.get("content_hash")
    return None if h is None else str(h)


def _check_basis(basis: Any, store: TokenStore, where: Path) -> str | None:
    """None when ``basis`` belongs to ``store``, else why not."""
    h = _basis_corpus_hash(basis)
    if (getattr(basis, "meta", None) or {}).get("top_k") is not None:
        return "it is a top-K basis; the model needs the statistics over the full vocabulary"
    if h is not None and h != store.content_hash:
        return f"it was computed from corpus {h}, {store.path} has hash {store.content_hash}"
    if (int(basis.V), int(basis.T)) != (store.V, store.T) or (h is None and int(basis.N) != store.N):
        return (f"its sizes (V={basis.V}, T={basis.T}, N={basis.N}) differ from the corpus "
                f"({store.V}, {store.T}, {store.N})")
    return None


def get_basis(cfg: TrainConfig, store: TokenStore, run: Path) -> Any:
    """The full-corpus basis: from --stats DIR, from the RUN/basis/ cache, or computed once."""
    from leadingterms.basis import compute_basis, load_basis, save_basis

    if cfg.stats:
        d = Path(cfg.stats)
        if not d.is_dir():
            raise LeadingTermsError(f"--stats directory not found: {d} (make one with `leadingterms stats`)")
        basis = load_basis(d)
        why = _check_basis(basis, store, d)
        if why:
            raise LeadingTermsError(f"--stats {d} does not belong to --corpus {store.path}: {why}")
        return basis
    d = run / BASIS_DIR
    if d.is_dir() and any(d.iterdir()):
        try:
            basis = load_basis(d)
            if _check_basis(basis, store, d) is None:
                return basis
        except LeadingTermsError:
            pass  # stale or torn cache: recompute below
    basis = compute_basis(store.tokens, store.V, vocab=store.vocab, progress=cfg.progress and progress_enabled())
    save_basis(d, basis, extra_meta={"corpus_hash": store.content_hash, "corpus": str(store.path)})
    return basis


# ----------------------------------------------------------------------------- the loop pieces


def _rows(store_tokens: np.ndarray, idx: np.ndarray | slice, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(store_tokens[idx], dtype=np.int64)).to(device)


def _per_sequence_bytes(V: int, T: int, L: int, itemsize: int) -> int:
    """Rough activation memory of one sequence through forward + backward."""
    return itemsize * T * (4 * V * (L + 1) + 4 * T * L)


def mean_loss(model: Any, tokens: np.ndarray, device: torch.device, chunk: int) -> float:
    """Mean cross-entropy of ``model`` over all rows of ``tokens`` (N, T+1), in chunks, no grad."""
    n = int(tokens.shape[0])
    total = 0.0
    with torch.no_grad():
        for i in range(0, n, chunk):
            batch = _rows(tokens, slice(i, i + chunk), device)
            total += float(model.loss(batch)) * batch.shape[0]
    return total / n


class PlainSGD:
    """theta <- theta - lr * grad: the paper's optimizer (no momentum, no weight decay, no state).

    Same arithmetic as ``torch.optim.SGD(params, lr)``, without importing torch.optim (whose
    first use costs seconds of import time); state_dict/load_state_dict follow its layout.
    """

    def __init__(self, params: list[torch.nn.Parameter], lr: float) -> None:
        self.params, self.lr = params, float(lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-self.lr)

    def state_dict(self) -> dict[str, Any]:
        return {"state": {}, "param_groups": [{"lr": self.lr, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        if sd.get("state") or float(sd["param_groups"][0]["lr"]) != self.lr:
            raise LeadingTermsError("checkpoint optimizer state does not match plain SGD at this learning rate")


class _Trainer:
    """State of one training process (model, optimizer, shadow, basis, data order)."""

    def __init__(self, cfg: TrainConfig, store: TokenStore, run: Path) -> None:
        from leadingterms.model import AttentionOnlyTransformer, ModelConfig

        self.cfg, self.store, self.run = cfg, store, run
        self.device = resolve_device(cfg.device)
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        self.order = DataOrder(store.N, cfg.batch_size, cfg.grad_accum, cfg.seed)
        self.total = cfg.steps if cfg.steps is not None else int(cfg.epochs or 0) * self.order.steps_per_epoch
        self.L = cfg.layers
        itemsize = 8 if self.dtype == torch.float64 else 4
        per_seq = _per_sequence_bytes(store.V, store.T, cfg.layers, itemsize)
        if self.device.type == "cpu":  # on a GPU an out-of-memory error is caught in step()
            check_memory(per_seq * cfg.batch_size, f"a micro-batch of {cfg.batch_size} sequences",
                         hint="lower --batch-size and raise --grad-accum")
        self.eval_chunk = max(1, min(cfg.batch_size, (256 << 20) // per_seq))
        self.model_cfg = ModelConfig(V=store.V, T=store.T, layers=cfg.layers, init=cfg.init, dtype=self.dtype)
        self.model = AttentionOnlyTransformer(self.model_cfg, seed=cfg.seed, device=self.device)
        params = list(self.model.parameters())
        self.opt: Any = PlainSGD(params, cfg.lr) if cfg.optimizer == "sgd" else torch.optim.Adam(params, lr=cfg.lr)
        self.basis = get_basis(cfg, store, run) if {"closed_form", "second_order"} & set(cfg.track) else None
        self.shadow = None
        if "shadow" in cfg.track:
            from leadingterms.predict import Shadow

            self.shadow = Shadow(store.V, store.T, cfg.layers, cfg.lr, dtype=torch.float64, device=self.device)
        n_eval = store.N if cfg.eval_sequences is None else min(cfg.eval_sequences, store.N)
        self.eval_tokens = store.tokens[:n_eval]
        self.elapsed_before = 0.0

    # -- metrics
    def predictions(self, kind: str, step: int) -> dict[str, torch.Tensor]:
        from leadingterms.predict import closed_form, second_order

        if kind == "shadow":
            assert self.shadow is not None
            return self.shadow.weights()
        if step == 0:  # nothing has moved yet: every prediction is zero
            return {k: torch.zeros_like(v, dtype=torch.float64) for k, v in self.model.weights().items()}
        assert self.basis is not None
        fn = closed_form if kind == "closed_form" else second_order
        pred = fn(self.basis, step, self.cfg.lr, self.L)
        return second_order_keys(pred) if kind == "second_order" else pred

    def metrics_row(self, step: int, batch_loss: float | None) -> dict[str, Any]:
        learned = {k: v.detach().cpu() for k, v in self.model.weights().items()}
        val = self.store.val_tokens
        row: dict[str, Any] = {
            "step": step,
            "epoch": self.order.epoch_float(step),
            "loss": finite_or_none(mean_loss(self.model, self.eval_tokens, self.device, self.eval_chunk)),
            "batch_loss": finite_or_none(batch_loss),
            "val_loss": None if val is None or len(val) == 0
            else finite_or_none(mean_loss(self.model, val, self.device, self.eval_chunk)),
        }
        from leadingterms.predict import compare

        for kind in ("closed_form", "shadow", "second_order"):
            tracked = kind in self.cfg.track
            row[kind] = clean_comparison(compare(learned, self.predictions(kind, step))) if tracked else None
        row["layer_spread"] = layer_spread(learned, self.L)
        return row

    # -- one optimizer step
    def step(self, step: int) -> float:
        """Optimizer update ``step`` -> ``step+1`` -> the mean loss of its batch before the update."""
        micro = self.order.step_batches(step)
        n = sum(len(b) for b in micro)
        self.opt.zero_grad(set_to_none=True)
        total = 0.0
        try:
            for rows in micro:
                batch = _rows(self.store.tokens, rows, self.device)
                loss = self.model.loss(batch)
                (loss * (len(rows) / n)).backward()
                total += float(loss.detach()) * len(rows) / n
        except torch.OutOfMemoryError:
            raise LeadingTermsError(
                f"out of memory on {self.device} with micro-batches of {self.cfg.batch_size} sequences; "
                "lower --batch-size and raise --grad-accum"
            ) from None
        self.opt.step()
        if self.shadow is not None:
            union = np.sort(np.concatenate(micro))
            self.shadow.update(np.asarray(self.store.tokens[union], dtype=np.int64))
        return total

    # -- checkpoints
    def checkpoint_due(self, step: int) -> bool:
        return step % self.cfg.ckpt_every == 0 or is_log_spaced(step) or step == self.total

    def save(self, step: int, elapsed: float) -> None:
        weights = self.model.weights()
        bad = [k for k, v in weights.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise _Diverged(step, f"weight {bad[0]} is not finite")
        opt_t, opt_meta = optimizer_tensors(self.opt)
        groups = {"model": dict(weights), "optim": opt_t}
        if self.shadow is not None:
            groups["shadow"] = self.shadow.state_dict()
        meta = {
            "kind": "leadingterms.train.checkpoint",
            "config": self.cfg.to_json(),
            "corpus_hash": self.store.content_hash,
            "model": self.model_cfg.to_dict(),
            "data_order": {"seed": self.cfg.seed, **self.order.state(step)},
            "rng": {"scheme": "numpy default_rng([seed, epoch]).permutation(N) per epoch; "
                              "no other randomness after init", "seed": self.cfg.seed},
            "optimizer": {"name": self.cfg.optimizer, **opt_meta},
            "elapsed_s": elapsed,
        }
        save_checkpoint(self.run, step, groups, meta)
        prune_checkpoints(self.run, self.cfg.keep_last, protect=step)

    def restore(self, step: int) -> None:
        groups, meta = load_checkpoint_raw(self.run, step)
        if meta.get("corpus_hash") != self.store.content_hash:
            raise LeadingTermsError(f"checkpoint of step {step} in {self.run} was written for another corpus")
        expect = {"seed": self.cfg.seed, **self.order.state(step)}
        if meta.get("data_order") != expect:
            raise LeadingTermsError(
                f"checkpoint of step {step} has data-order state {meta.get('data_order')}, expected {expect}"
            )
        with torch.no_grad():
            for k, p in self.model.named_parameters():
                if k not in groups["model"] or groups["model"][k].shape != p.shape:
                    raise LeadingTermsError(f"checkpoint of step {step} lacks weight {k} {tuple(p.shape)}")
                p.copy_(groups["model"][k])
        load_optimizer(self.opt, groups["optim"], meta["optimizer"], self.device)
        if self.shadow is not None:
            if not groups["shadow"]:
                raise LeadingTermsError(f"checkpoint of step {step} has no shadow state")
            self.shadow.load_state_dict(groups["shadow"])
        self.elapsed_before = float(meta.get("elapsed_s", 0.0))


class _Diverged(Exception):
    def __init__(self, step: int, why: str) -> None:
        super().__init__(why)
        self.step, self.why = step, why


# ----------------------------------------------------------------------------- runner


def train(cfg: TrainConfig, *, on_step: Callable[[int], None] | None = None) -> RunResult:
    """Train per ``cfg`` into ``cfg.out`` (fresh, --overwrite, or --resume) -> :class:`RunResult`.

    ``on_step(s)`` is called after step s is complete (logged and checkpointed where due); an
    exception raised there stops the run as a kill would (tests use it to simulate one).
    Raises LeadingTermsError (one line) on bad input, a refused resume, or divergence.
    """
    validate(cfg)
    store = load_store(cfg.corpus)
    check_ids_in_range(store)
    run = _prepare_run_dir(cfg)
    resuming = cfg.resume and _check_resume(cfg, run, store)
    tr = _Trainer(cfg, store, run)
    (run / SUMMARY_FILE).unlink(missing_ok=True)
    write_json(run / CONFIG_FILE, {
        "kind": "leadingterms.train",
        "config": cfg.to_json(),
        "corpus": str(store.path),
        "corpus_hash": store.content_hash,
        "V": store.V, "T": store.T, "N": store.N,
        "steps_per_epoch": tr.order.steps_per_epoch,
        "total_steps": tr.total,
        "model": tr.model_cfg.to_dict(),
        "theory_caveats": theory_caveats(cfg),
    })
    for note in theory_caveats(cfg):
        print(f"leadingterms train: note: {note}", file=sys.stderr)

    start = 0
    ckpts = list_checkpoints(run) if resuming else []
    if ckpts:
        start = ckpts[-1]
        if start > tr.total:
            raise LeadingTermsError(
                f"cannot resume {run}: it is at step {start}, beyond the requested {tr.total} steps"
            )
        tr.restore(start)
        truncate_metrics(run, start)
    else:
        if cfg.resume:
            print(f"leadingterms train: nothing to resume in {run}; starting from step 0", file=sys.stderr)
        truncate_metrics(run, -1)

    t0 = time.perf_counter()
    elapsed = lambda: tr.elapsed_before + time.perf_counter() - t0  # noqa: E731
    from tqdm.auto import tqdm

    pbar = tqdm(total=tr.total, initial=start, desc="train", unit="step", dynamic_ncols=True, leave=False,
                disable=not (cfg.progress and progress_enabled()))
    try:
        _loop(tr, start, pbar, elapsed, on_step)
    except _Diverged as d:
        pbar.close()
        good = [s for s in list_checkpoints(run) if s < d.step]
        kept = f"last good checkpoint: {checkpoint_paths(run, good[-1])[0]}" if good else "no good checkpoint"
        write_json(run / SUMMARY_FILE, _summary(cfg, tr, run, start, elapsed(), time.perf_counter() - t0,
                                                diverged={"step": d.step, "reason": d.why}))
        raise LeadingTermsError(
            f"training diverged at step {d.step} ({d.why}); lower --lr (now {cfg.lr}); {kept}"
        ) from None
    finally:
        pbar.close()
    wall = time.perf_counter() - t0
    summary = _summary(cfg, tr, run, start, elapsed(), wall, diverged=None)
    write_json(run / SUMMARY_FILE, summary)
    return RunResult(run_dir=run, steps=tr.total, final=summary["final"], summary=summary, wall_s=wall,
                     steps_per_s=summary["steps_per_s"], resumed_from=start if start > 0 else None)


def _loop(tr: _Trainer, start: int, pbar: Any, elapsed: Callable[[], float],
          on_step: Callable[[int], None] | None) -> None:
    """Steps ``start`` .. total with logging and checkpoints; raises _Diverged on a non-finite loss.

    _Diverged.step is the first step whose weights are known to be bad.
    """
    cfg, run = tr.cfg, tr.run
    if start == 0:
        row = tr.metrics_row(0, None)
        append_metrics(run, row)
        if row["loss"] is None:
            raise _Diverged(0, "the initial loss is not finite")
        tr.save(0, elapsed())
    for s in range(start, tr.total):
        batch_loss = tr.step(s)
        if not math.isfinite(batch_loss):
            raise _Diverged(s, f"loss {batch_loss} on the batch of update {s + 1}")
        done = s + 1
        if done % cfg.log_every == 0 or done == tr.total:
            row = tr.metrics_row(done, batch_loss)
            append_metrics(run, row)
            if row["loss"] is None:
                raise _Diverged(done, "the training loss is not finite")
        if tr.checkpoint_due(done):
            tr.save(done, elapsed())
        pbar.update(1)
        pbar.set_postfix(loss=f"{batch_loss:.4f}", refresh=False)
        if on_step is not None:
            on_step(done)


def _summary(cfg: TrainConfig, tr: _Trainer, run: Path, start: int, elapsed_total: float, wall: float,
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
        "validity_horizon": validity_horizon(metrics),
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
