"""One training process: the model, its optimizer and shadow, one optimizer step, and the loop.

Order of work per optimizer step s -> s+1: the step's micro-batches (data order, see .data)
are forwarded and back-propagated with weights |b_k|/|b| (so the accumulated gradient is that
of the mean loss over the union batch), the optimizer updates, the shadow (docs/theory.md §5)
is updated with the union batch; then, if s+1 is a logged step, a metrics row is appended, and
if it is a checkpoint step, a checkpoint is written. A killed run therefore resumes from its
last checkpoint, and metrics.jsonl is cut back to that step first: the continued run writes the
same bytes as an uninterrupted one (on CPU; CUDA kernels need not be deterministic).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leadingterms.basis import Basis
from leadingterms.budget import check_memory
from leadingterms.corpus.store import TokenStore
from leadingterms.errors import LeadingTermsError
from leadingterms.model import AttentionOnlyTransformer, ModelConfig, dataset_loss
from leadingterms.shadow import Shadow
from leadingterms.training.checkpoints import (
    is_log_spaced,
    load_checkpoint_raw,
    load_optimizer,
    optimizer_tensors,
    prune_checkpoints,
    save_checkpoint,
)
from leadingterms.training.config import TrainConfig
from leadingterms.training.data import DataOrder
from leadingterms.training.tracking import append_metrics, metrics_row
from leadingterms.validate import parse_dtype, resolve_device


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


def per_sequence_bytes(V: int, T: int, L: int, itemsize: int) -> int:
    """Rough activation memory of one sequence through forward + backward."""
    return itemsize * T * (4 * V * (L + 1) + 4 * T * L)


class Diverged(Exception):
    """A non-finite loss or weight at ``step``; the runner turns it into a one-line error."""

    def __init__(self, step: int, why: str) -> None:
        super().__init__(why)
        self.step, self.why = step, why


class Trainer:
    """State of one training process (model, optimizer, shadow, basis, data order)."""

    def __init__(self, cfg: TrainConfig, store: TokenStore, run: Path, basis: Basis | None) -> None:
        self.cfg, self.store, self.run, self.basis = cfg, store, run, basis
        self.device = resolve_device(cfg.device)
        self.dtype = parse_dtype(cfg.dtype)
        self.order = DataOrder(store.N, cfg.batch_size, cfg.grad_accum, cfg.seed)
        self.total = cfg.steps if cfg.steps is not None else int(cfg.epochs or 0) * self.order.steps_per_epoch
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        per_seq = per_sequence_bytes(store.V, store.T, cfg.layers, itemsize)
        if self.device.type == "cpu":  # on a GPU an out-of-memory error is caught in step()
            check_memory(per_seq * cfg.batch_size, f"a micro-batch of {cfg.batch_size} sequences",
                         hint="lower --batch-size and raise --grad-accum")
        self.eval_chunk = max(1, min(cfg.batch_size, (256 << 20) // per_seq))
        self.model_cfg = ModelConfig(V=store.V, T=store.T, layers=cfg.layers, init=cfg.init, dtype=self.dtype)
        self.model = AttentionOnlyTransformer(self.model_cfg, seed=cfg.seed, device=self.device)
        params = list(self.model.parameters())
        self.opt: Any = PlainSGD(params, cfg.lr) if cfg.optimizer == "sgd" else torch.optim.Adam(params, lr=cfg.lr)
        self.shadow = (Shadow(store.V, store.T, cfg.layers, cfg.lr, dtype=torch.float64, device=self.device)
                       if "shadow" in cfg.track else None)
        n_eval = store.N if cfg.eval_sequences is None else min(cfg.eval_sequences, store.N)
        self.eval_tokens = store.tokens[:n_eval]
        self.elapsed_before = 0.0

    def _rows(self, idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.store.tokens[idx], dtype=np.int64)).to(self.device)

    def loss(self, tokens: Any) -> float:
        return dataset_loss(self.model, tokens, batch_size=self.eval_chunk)

    def log(self, step: int, batch_loss: float | None) -> dict[str, Any]:
        """Append the metrics row of ``step`` to RUN/metrics.jsonl and return it."""
        val = self.store.val_tokens
        row = metrics_row(
            step, epoch=self.order.epoch_float(step), weights=self.model.weights(), layers=self.cfg.layers,
            lr=self.cfg.lr, track=self.cfg.track, basis=self.basis,
            shadow=self.shadow.weights() if self.shadow is not None else None,
            loss=self.loss(self.eval_tokens), batch_loss=batch_loss,
            val_loss=None if val is None or len(val) == 0 else self.loss(val))
        append_metrics(self.run, row)
        return row

    def step(self, step: int) -> float:
        """Optimizer update ``step`` -> ``step+1`` -> the mean loss of its batch before the update."""
        micro = self.order.step_batches(step)
        n = sum(len(b) for b in micro)
        self.opt.zero_grad(set_to_none=True)
        total = 0.0
        try:
            for rows in micro:
                loss = self.model.loss(self._rows(rows))
                (loss * (len(rows) / n)).backward()
                total += float(loss.detach()) * len(rows) / n
        except torch.OutOfMemoryError:
            raise LeadingTermsError(
                f"out of memory on {self.device} with micro-batches of {self.cfg.batch_size} sequences; "
                "lower --batch-size and raise --grad-accum") from None
        self.opt.step()
        if self.shadow is not None:
            union = np.sort(np.concatenate(micro))
            self.shadow.update(np.asarray(self.store.tokens[union], dtype=np.int64))
        return total

    def checkpoint_due(self, step: int) -> bool:
        return step % self.cfg.ckpt_every == 0 or is_log_spaced(step) or step == self.total

    def save(self, step: int, elapsed: float) -> None:
        weights = self.model.weights()
        bad = [k for k, v in weights.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise Diverged(step, f"weight {bad[0]} is not finite")
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
                f"checkpoint of step {step} has data-order state {meta.get('data_order')}, expected {expect}")
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


def run_steps(tr: Trainer, start: int, elapsed: Callable[[], float], *, on_step: Callable[[int], None] | None,
              progress: Callable[[float], None]) -> None:
    """Steps ``start`` .. total with logging and checkpoints; raises :class:`Diverged` on a non-finite
    loss (``Diverged.step`` is the first step whose weights are known to be bad). ``progress(batch_loss)``
    is called after every step, ``on_step(s)`` once step s is complete (logged and checkpointed)."""
    cfg = tr.cfg
    if start == 0:
        if tr.log(0, None)["loss"] is None:
            raise Diverged(0, "the initial loss is not finite")
        tr.save(0, elapsed())
    for s in range(start, tr.total):
        batch_loss = tr.step(s)
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
