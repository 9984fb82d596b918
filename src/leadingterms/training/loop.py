"""One training process: the model, its optimizer and shadow, one optimizer step, and the loop.

Order of work per optimizer step s -> s+1: the step's micro-batches (data order, see .data)
are forwarded and back-propagated with weights |b_k|/|b| (so the accumulated gradient is that
of the mean loss over the union batch) and the shadow's increments (docs/theory.md §5) are
computed for the union batch (:meth:`Trainer.prepare`); then the optimizer and the shadow update
(:meth:`Trainer.commit`). If s+1 is a logged step a metrics row is appended, and if it is a
checkpoint step the checkpoint goes to the background writer (.checkpoints). A killed run
therefore resumes from its last complete checkpoint, and metrics.jsonl is cut back to that step
first: the continued run writes the same bytes as an uninterrupted one (on CPU; CUDA kernels
need not be deterministic). The runner times the first prepared step for its estimate before
committing it, so the estimate costs no extra step.

One host synchronisation per step (the batch loss, for the divergence check and the progress
bar); token ids are checked once when the store is opened, not per micro-batch.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leadingterms.basis import Basis
from leadingterms.corpus.store import TokenStore
from leadingterms.errors import LeadingTermsError
from leadingterms.model import AttentionOnlyTransformer, ModelConfig, dataset_loss
from leadingterms.shadow import Shadow, ShadowStep
from leadingterms.training.checkpoints import (
    CheckpointWriter,
    check_checkpoint_config,
    checkpoint_due,
    holds_shadow,
    load_checkpoint_raw,
    load_optimizer,
    optimizer_tensors,
)
from leadingterms.training.config import TrainConfig
from leadingterms.training.data import DataOrder
from leadingterms.training.estimate import per_sequence_bytes
from leadingterms.training.replay import shadow_at, step_tokens
from leadingterms.training.tracking import append_metrics, metrics_row
from leadingterms.validate import all_finite, parse_dtype, resolve_device


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


class Diverged(Exception):
    """A non-finite loss or weight at ``step``; the runner turns it into a one-line error."""

    def __init__(self, step: int, why: str) -> None:
        super().__init__(why)
        self.step, self.why = step, why


@dataclass
class Prepared:
    """An optimizer step whose gradients and shadow increments are computed but not yet applied."""

    step: int
    loss: torch.Tensor  # mean loss of the step's batch at the weights before it (float64 scalar, on device)
    shadow: ShadowStep | None
    seconds: dict[str, float]  # "model" (forward + backward) and "shadow" (increments), when timed


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """TF32 matmuls on CUDA for ``precision == "tf32"`` during the block (restored after)."""
    if precision != "tf32" or device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """State of one training process (model, optimizer, shadow, predictions, data order)."""

    def __init__(self, cfg: TrainConfig, store: TokenStore, run: Path) -> None:
        self.cfg, self.store, self.run = cfg, store, run
        self.device = resolve_device(cfg.device)
        self.dtype = parse_dtype(cfg.dtype)
        self.order = DataOrder(store.N, cfg.batch_size, cfg.grad_accum, cfg.seed)
        self.total = cfg.steps if cfg.steps is not None else int(cfg.epochs or 0) * self.order.steps_per_epoch
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        per_seq = per_sequence_bytes(store.V, store.T, cfg.layers, itemsize)
        self.eval_chunk = max(1, min(cfg.batch_size, (256 << 20) // per_seq))
        self.model_cfg = ModelConfig(V=store.V, T=store.T, layers=cfg.layers, init=cfg.init, dtype=self.dtype)
        self.model = AttentionOnlyTransformer(self.model_cfg, seed=cfg.seed, device=self.device)
        params = list(self.model.parameters())
        self.opt: Any = PlainSGD(params, cfg.lr) if cfg.optimizer == "sgd" else torch.optim.Adam(params, lr=cfg.lr)
        self.shadow = (Shadow(store.V, store.T, cfg.layers, cfg.lr, dtype=torch.float64, device=self.device)
                       if "shadow" in cfg.track else None)
        self.preds: Any = None  # leadingterms.predict.Predictions once a basis is attached
        self.eval_tokens = store.tokens[:cfg.eval_count(store.N)]
        val = store.val_tokens
        self.val_tokens = None if val is None or len(val) == 0 else val[:cfg.eval_count(len(val))]
        self.writer: CheckpointWriter | None = None
        self.elapsed_before = 0.0
        self.run_id: str | None = None  # RUN/config.json's, recorded in every checkpoint
        self.metrics_size: int | None = None  # bytes of metrics.jsonl this run has written (None: not checked)

    def attach_basis(self, basis: Basis) -> None:
        """The full-corpus basis the closed forms and second-order terms are read from (on this device)."""
        from leadingterms.predict import Predictions, basis_on

        self.preds = Predictions(basis_on(basis, self.device), self.cfg.layers)

    def _rows(self, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.store.tokens[idx], dtype=np.int64)).to(self.device)

    def _autocast(self) -> Any:
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def loss(self, tokens: Any) -> float:
        """Mean cross-entropy of the model over ``tokens`` (full precision)."""
        return dataset_loss(self.model, tokens, batch_size=self.eval_chunk, check=False)

    def log_row(self, step: int, batch_loss: float | None) -> dict[str, Any]:
        """The metrics row of ``step`` (see :mod:`.tracking`)."""
        return metrics_row(
            step, epoch=self.order.epoch_float(step), weights=self.model.weights(), layers=self.cfg.layers,
            lr=self.cfg.lr, track=self.cfg.track, preds=self.preds,
            shadow=self.shadow.weight_rows() if self.shadow is not None else None,
            loss=self.loss(self.eval_tokens), batch_loss=batch_loss,
            val_loss=None if self.val_tokens is None else self.loss(self.val_tokens))

    def time_log(self, step: int) -> float:
        """Seconds a logged step will take, from a sample: the loss of one chunk of sequences scaled to
        the sample sizes, plus the comparisons (for a dry run or a resumed run; nothing is written)."""
        t0 = time.perf_counter()
        self.loss(self.eval_tokens[: self.eval_chunk])
        _sync(self.device)
        n = len(self.eval_tokens) + (0 if self.val_tokens is None else len(self.val_tokens))
        per_chunk = time.perf_counter() - t0
        t1 = time.perf_counter()
        metrics_row(step, epoch=0.0, weights=self.model.weights(), layers=self.cfg.layers, lr=self.cfg.lr,
                    track=self.cfg.track, preds=self.preds,
                    shadow=self.shadow.weight_rows() if self.shadow is not None else None,
                    loss=0.0, batch_loss=None, val_loss=None)
        _sync(self.device)
        return per_chunk * -(-n // self.eval_chunk) + time.perf_counter() - t1

    def time_step(self, step: int) -> dict[str, float]:
        """Seconds of optimizer step ``step`` from a sample (for a dry run): the forward/backward of its first
        micro-batch times the number of micro-batches, and the shadow's increments. Gradients are dropped."""
        micro = self.order.step_batches(step)
        self.opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        with self._autocast():
            loss = self.model.loss(self._rows(micro[0]), check=False)
        loss.backward()
        _sync(self.device)
        seconds = {"model": (time.perf_counter() - t0) * len(micro)}
        self.opt.zero_grad(set_to_none=True)
        if self.shadow is not None:
            t1 = time.perf_counter()
            self.shadow.increments(step_tokens(self.store, self.order, step))
            _sync(self.device)
            seconds["shadow"] = time.perf_counter() - t1
        return seconds

    def log(self, step: int, batch_loss: float | None) -> dict[str, Any]:
        """Append the metrics row of ``step`` to RUN/metrics.jsonl and return it."""
        row = self.log_row(step, batch_loss)
        self.metrics_size = append_metrics(self.run, row, expect_size=self.metrics_size)
        return row

    def prepare(self, step: int, *, timed: bool = False) -> Prepared:
        """Gradients of optimizer step ``step`` (the mean loss over its batch) and the shadow's increments."""
        micro = self.order.step_batches(step)
        n = sum(len(b) for b in micro)
        seconds: dict[str, float] = {}
        t0 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        try:
            for rows in micro:
                with self._autocast():
                    loss = self.model.loss(self._rows(rows), check=False)
                (loss * (len(rows) / n)).backward()
                total += loss.detach().double() * len(rows) / n
        except torch.OutOfMemoryError:
            raise LeadingTermsError(
                f"out of memory on {self.device} with micro-batches of {self.cfg.batch_size} sequences; "
                "lower --batch-size and raise --grad-accum") from None
        if timed:
            _sync(self.device)
            seconds["model"] = time.perf_counter() - t0
        inc = None
        if self.shadow is not None:
            t1 = time.perf_counter()
            inc = self.shadow.increments(step_tokens(self.store, self.order, step))
            if timed:
                _sync(self.device)
                seconds["shadow"] = time.perf_counter() - t1
        return Prepared(step=step, loss=total, shadow=inc, seconds=seconds)

    def commit(self, p: Prepared) -> float:
        """Apply a prepared step (optimizer update, shadow update) -> the mean loss of its batch."""
        self.opt.step()
        if self.shadow is not None:
            assert p.shadow is not None
            self.shadow.apply(p.shadow)
        return float(p.loss)

    def step(self, step: int) -> float:
        """Optimizer update ``step`` -> ``step+1`` -> the mean loss of its batch before the update."""
        return self.commit(self.prepare(step))

    def checkpoint_due(self, step: int) -> bool:
        return checkpoint_due(step, self.total, self.cfg.checkpoint_every, self.cfg.early_checkpoints)

    def save(self, step: int, elapsed: float) -> None:
        """Hand the checkpoint of ``step`` to the background writer (weights checked finite first)."""
        assert self.writer is not None
        weights = self.model.weights()
        bad = [k for k, v in weights.items() if not all_finite(v)]
        if bad:
            raise Diverged(step, f"weight {bad[0]} is not finite")
        opt_t, opt_meta = optimizer_tensors(self.opt)
        groups = {"model": dict(weights), "optim": opt_t}
        if self.shadow is not None and holds_shadow(step, self.total, self.cfg.checkpoint_every):
            groups["shadow"] = self.shadow.state_dict(clone=False)
        meta = {
            "kind": "leadingterms.train.checkpoint",
            "run_id": self.run_id,
            "config": self.cfg.to_json(),
            "corpus_hash": self.store.content_hash,
            "model": self.model_cfg.to_dict(),
            "data_order": {"seed": self.cfg.seed, **self.order.state(step)},
            "rng": {"scheme": "numpy default_rng([seed, epoch]).permutation(N) per epoch; "
                              "no other randomness after init", "seed": self.cfg.seed},
            "optimizer": {"name": self.cfg.optimizer, **opt_meta},
            "elapsed_s": elapsed,
        }
        self.writer.submit(step, groups, meta)

    def restore(self, step: int) -> None:
        """Load the checkpoint of ``step`` into the model, optimizer and shadow after checking that it is this
        run's (run id, corpus, config, data order, shapes; finite). Reads files only: a refused checkpoint
        leaves the run folder as it was."""
        groups, meta = load_checkpoint_raw(self.run, step, expect={"run_id": self.run_id,
                                                                   "corpus_hash": self.store.content_hash})
        check_checkpoint_config(meta, self.cfg, where=f"checkpoint of step {step} in {self.run}")
        expect = {"seed": self.cfg.seed, **self.order.state(step)}
        if meta.get("data_order") != expect:
            raise LeadingTermsError(
                f"checkpoint of step {step} has data-order state {meta.get('data_order')}, expected {expect}")
        opt_meta = meta.get("optimizer")
        if not isinstance(opt_meta, dict) or not isinstance(opt_meta.get("param_groups"), list):
            raise LeadingTermsError(f"checkpoint metadata of step {step} in {self.run} is corrupt: field "
                                    "'optimizer' lacks its param_groups")
        with torch.no_grad():
            for k, p in self.model.named_parameters():
                if k not in groups["model"] or groups["model"][k].shape != p.shape:
                    raise LeadingTermsError(f"checkpoint of step {step} lacks weight {k} {tuple(p.shape)}")
                p.copy_(groups["model"][k])
        try:
            load_optimizer(self.opt, groups["optim"], opt_meta, self.device)
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise LeadingTermsError(f"checkpoint of step {step} in {self.run} has an optimizer state that does "
                                    f"not fit this run ({str(exc).splitlines()[0][:100]})") from None
        if self.shadow is not None:
            self.shadow = shadow_at(self.run, step, cfg=self.cfg, store=self.store, device=self.device)
        elapsed = meta.get("elapsed_s", 0.0)
        self.elapsed_before = float(elapsed) if isinstance(elapsed, (int, float)) else 0.0


def run_steps(tr: Trainer, start: int, elapsed: Callable[[], float], *, on_step: Callable[[int], None] | None,
              progress: Callable[[float], None], first: Prepared | None = None) -> None:
    """Steps ``start`` .. total with logging and checkpoints (step 0's log and checkpoint are the runner's);
    ``first``: step ``start`` already prepared. Raises :class:`Diverged` on a non-finite loss
    (``Diverged.step`` is the first step whose weights are known to be bad). ``progress(batch_loss)``
    is called after every step, ``on_step(s)`` once step s is complete (logged and checkpointed)."""
    cfg = tr.cfg
    for s in range(start, tr.total):
        batch_loss = tr.commit(first if first is not None and s == start else tr.prepare(s))
        if not math.isfinite(batch_loss):
            raise Diverged(s, f"loss {batch_loss} on the batch of update {s + 1}")
        done = s + 1
        if (done % cfg.log_every == 0 or done == tr.total) and tr.log(done, batch_loss)["loss"] is None:
            raise Diverged(done, "the training loss is not finite")
        if tr.checkpoint_due(done):
            tr.save(done, elapsed())
        progress(batch_loss)
        if on_step is not None:
            on_step(done)
