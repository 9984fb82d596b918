"""What a training run will cost, known before its first step: memory, disk and time.

:func:`plan` counts, from the sizes alone, the peak memory (the L·V² weights, their gradients,
the optimizer state, the activations of a micro-batch, the float64 shadow, the basis and the
fixed prediction matrices, the logging temporaries and the copy a background checkpoint write
holds) and the disk the checkpoint policy keeps (:mod:`.checkpoints`) plus the basis cache.
:func:`check` refuses in one line when either would not fit. The runner then times the first
optimizer step and one logged step and fills in the time (:meth:`Estimate.lines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from leadingterms.budget import available_memory_bytes, check_disk, check_memory, format_bytes, free_disk_bytes
from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import BLOCK_ELEMENTS
from leadingterms.training.checkpoints import early_steps
from leadingterms.training.config import TrainConfig

#: Bytes of the interpreter, torch and the token store's pages, besides the counted tensors.
BASELINE_BYTES = 320 * 2**20
#: Bytes of one checkpoint's JSON (config, data order, optimizer hyper-parameters), an upper bound.
CHECKPOINT_JSON_BYTES = 16 * 2**10
#: Bytes of one metrics.jsonl row, an upper bound.
METRICS_ROW_BYTES = 4 * 2**10


def per_sequence_bytes(V: int, T: int, L: int, itemsize: int) -> int:
    """Rough activation memory of one sequence through forward + backward."""
    return itemsize * T * (4 * V * (L + 1) + 4 * T * L)


def n_params(V: int, T: int, L: int) -> int:
    """Number of model parameters: W_O (V, V) and per layer W, V (V, V) and P (T,)."""
    return V * V + L * (2 * V * V + T)


def logged_steps(start: int, total: int, log_every: int) -> int:
    """Logged steps in (start, total]: every ``log_every`` and the last."""
    steps = {s for s in range(start + 1, total + 1) if s % log_every == 0}
    return len(steps | ({total} if total > start else set()))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Estimate:
    """Sizes (bytes) and, once measured, times (seconds) of a training run.

    ``memory``: part -> bytes at the peak (``device`` holds the parts that live on a CUDA device);
    ``checkpoint``: bytes of one checkpoint with and without the shadow state; ``kept``: the most
    checkpoints on disk at once; ``disk``: their bytes plus the basis cache and metrics; ``steps``,
    ``logs``: optimizer steps and logged steps still to run.
    """

    V: int
    T: int
    layers: int
    memory: dict[str, int]
    on_device: tuple[str, ...]
    checkpoint: tuple[int, int]
    kept: int
    kept_steps: str
    checkpoint_disk: int
    basis_cache: int
    disk: int
    steps: int
    logs: int
    device: str = "cpu"
    step_s: float | None = None
    step_parts: dict[str, float] = field(default_factory=dict)
    log_s: float | None = None
    eval_sequences: int = 0
    timed: str = "the first step, timed"
    available_memory: int = 0
    free_disk: int = 0

    @property
    def memory_bytes(self) -> int:
        return sum(self.memory.values())

    @property
    def total_s(self) -> float | None:
        if self.step_s is None or self.log_s is None:
            return None
        return self.steps * self.step_s + self.logs * self.log_s

    def lines(self) -> list[str]:
        """The estimate as notes: time, memory, disk (time only once measured)."""
        out = []
        if self.step_s is not None and self.log_s is not None:
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in self.step_parts.items())
            out.append(
                f"estimate: {self.step_s:.2f} s per step ({self.timed}: {parts}), {self.log_s:.2f} s per "
                f"logged step (loss over {self.eval_sequences} sequences and the comparisons) -> about "
                f"{_duration(self.total_s or 0.0)} for {self.steps:,} steps and {self.logs:,} logged steps")
        big = sorted(((v, k) for k, v in self.memory.items() if v > 0), reverse=True)[:5]
        where = "" if self.device == "cpu" else f" ({format_bytes(sum(self.memory[k] for k in self.on_device))} " \
                                               f"of it on {self.device})"
        out.append(f"estimate: peak memory about {format_bytes(self.memory_bytes)}{where} of "
                   f"{format_bytes(self.available_memory)} available: "
                   + ", ".join(f"{k} {format_bytes(v)}" for v, k in big))
        with_s, without = self.checkpoint
        size = (f"up to {format_bytes(with_s)} each" if with_s == without else
                f"up to {format_bytes(with_s)} with the shadow state, {format_bytes(without)} without")
        basis = f", plus the basis cache {format_bytes(self.basis_cache)}" if self.basis_cache else ""
        out.append(f"estimate: checkpoints {size}; at most {self.kept} on disk ({self.kept_steps}): "
                   f"{format_bytes(self.checkpoint_disk)}{basis}; {format_bytes(self.free_disk)} free")
        return out


def plan(cfg: TrainConfig, *, V: int, T: int, N: int, start: int, total: int, device: torch.device,
         basis_to_compute: bool) -> Estimate:
    """The memory and disk estimate of training per ``cfg`` from step ``start`` to ``total`` on a
    corpus of N sequences of T+1 tokens over V ids (``basis_to_compute``: RUN/basis/ will be written)."""
    from leadingterms.basis import estimate_bytes
    from leadingterms.predict import Predictions
    from leadingterms.shadow import Shadow
    from leadingterms.validate import parse_dtype

    L, item = cfg.layers, torch.empty((), dtype=parse_dtype(cfg.dtype)).element_size()
    model = n_params(V, T, L) * item
    tracked = set(cfg.track)
    needs_basis = bool({"closed_form", "second_order"} & tracked)
    optimizer = 2 * model if cfg.optimizer == "adam" else 0
    shadow = Shadow.state_bytes(V, T) if "shadow" in tracked else 0
    shadow_disk = Shadow.checkpoint_bytes(V, T, bigrams=N * T) if shadow else 0
    with_shadow = model + optimizer + shadow_disk + CHECKPOINT_JSON_BYTES
    without = model + optimizer + CHECKPOINT_JSON_BYTES
    basis = estimate_bytes(V, T) if needs_basis else 0  # computing (or holding) the float64 basis
    memory = {
        "weights": model,
        "gradients": model,
        "optimizer state": optimizer,
        "activations": per_sequence_bytes(V, T, L, item) * min(cfg.batch_size, N),
        "shadow": shadow + (8 * 4 * V * min(V, cfg.batch_size * cfg.grad_accum * (T + 1)) if shadow else 0),
        "basis": basis,
        "predictions": Predictions.extra_bytes(V, second_order="second_order" in tracked) if needs_basis else 0,
        # compare_many's float64 blocks; the layer spread's float64 mean and one difference (and a copy)
        "logging": 8 * BLOCK_ELEMENTS * 8 + (3 * 8 * V * V if L > 1 else 0),
        "checkpoint copy": with_shadow,
        "interpreter": BASELINE_BYTES,
    }
    on_device = ("weights", "gradients", "optimizer state", "activations", "shadow", "basis", "predictions",
                 "logging")
    early = [s for s in early_steps(cfg.early_checkpoints) if s <= total]
    size = lambda s: with_shadow if s > 0 and (s % cfg.checkpoint_every == 0 or s == total) else without  # noqa: E731
    in_flight = 1  # a new checkpoint is written before the oldest is pruned
    ckpt_disk = sum(size(s) for s in early) + (max(cfg.keep_last, 1) + in_flight) * with_shadow
    kept_steps = (", ".join(map(str, early)) + f" and the last {max(cfg.keep_last, 1)}") if early else \
        f"the last {max(cfg.keep_last, 1)}"
    basis_cache = 4 * V * V * 8 + 2 * V * 8 + T * 8 if basis_to_compute else 0
    logs = logged_steps(start, total, cfg.log_every) + (1 if start == 0 else 0)
    return Estimate(V=V, T=T, layers=L, memory=memory, on_device=on_device if device.type == "cuda" else (),
                    checkpoint=(with_shadow, without), kept=len(early) + max(cfg.keep_last, 1),
                    kept_steps=kept_steps, checkpoint_disk=ckpt_disk, basis_cache=basis_cache,
                    disk=ckpt_disk + basis_cache + logs * METRICS_ROW_BYTES, steps=total - start, logs=logs,
                    device=str(device), eval_sequences=cfg.eval_count(N),
                    available_memory=available_memory_bytes(), free_disk=free_disk_bytes(cfg.out))


def check(est: Estimate, out: str) -> None:
    """Refuse (one line) when the estimate exceeds the memory or the disk that is free."""
    hint = "lower --batch-size (and raise --grad-accum), or track less (--track)"
    what = f"training {est.layers} layer(s) at V={est.V}, T={est.T}"
    if est.on_device:
        dev = torch.device(est.device)
        free, _ = torch.cuda.mem_get_info(dev)
        need = sum(est.memory[k] for k in est.on_device)
        if need > free:
            raise LeadingTermsError(f"{what} needs about {format_bytes(need)} on {dev}, but only "
                                    f"{format_bytes(free)} is free; {hint}")
        check_memory(est.memory_bytes - need, what + " (host side)", hint=hint)
    else:
        check_memory(est.memory_bytes, what, hint=hint)
    check_disk(out, est.disk, f"the checkpoints of {what}",
               hint="lower --keep-last / --early-checkpoints, or raise --checkpoint-every")
