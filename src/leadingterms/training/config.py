"""The one configuration of ``leadingterms train`` (:class:`TrainConfig`) and its validation."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from leadingterms.errors import LeadingTermsError

#: Prediction kinds that can be tracked during training (keys of a metrics.jsonl row).
TRACK_KINDS = ("closed_form", "shadow", "second_order")
OPTIMIZERS = ("sgd", "adam")
DTYPES = ("float32", "float64")

#: Fields that must be equal for ``--resume`` to continue a run bit-identically. The others
#: (steps/epochs = how far to train, device, keep_last, overwrite/resume, progress, stats dir)
#: may change between invocations.
RESUME_MUST_MATCH = (
    "layers", "lr", "batch_size", "grad_accum", "dtype", "init", "seed", "optimizer",
    "log_every", "checkpoint_every", "track", "eval_sequences",
)


@dataclass
class TrainConfig:
    """Everything ``leadingterms train`` needs. Exactly one of ``steps`` / ``epochs`` is set.

    - ``batch_size`` B sequences per micro-batch, ``grad_accum`` K micro-batches per optimizer
      step: one step sees B*K sequences (B*K >= N, i.e. B = N and K = 1, is full-batch GD).
    - ``init``: ``"zero"`` (the theory's setting) or ``"normal:STD"``.
    - ``log_every``: a metrics.jsonl row every this many steps, plus step 0 and the final step.
    - ``checkpoint_every``: a checkpoint every this many steps (default: ``log_every``), plus
      steps 0, 1, 2, 4, 8, ... and the final step. ``keep_last`` of the scheduled ones are kept
      besides the log-spaced set.
    - ``track``: which predictions to compare with (subset of :data:`TRACK_KINDS`).
    - ``eval_sequences``: the logged ``loss`` is over the first this many training sequences
      (``None``: all of them).
    - ``stats``: a directory with a precomputed basis (``leadingterms stats``) to use instead of
      computing it into RUN/basis/.
    """

    corpus: str
    out: str
    layers: int
    lr: float
    batch_size: int
    grad_accum: int = 1
    steps: int | None = None
    epochs: int | None = None
    log_every: int = 10
    checkpoint_every: int | None = None
    dtype: str = "float32"
    init: str = "zero"
    seed: int = 0
    optimizer: str = "sgd"
    device: str = "cpu"
    keep_last: int = 3
    track: tuple[str, ...] = TRACK_KINDS
    eval_sequences: int | None = None
    stats: str | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.track = tuple(self.track)  # a list when read back from JSON

    @property
    def ckpt_every(self) -> int:
        return self.checkpoint_every or self.log_every

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["track"] = list(self.track)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def parse_init(init: str) -> tuple[str, float]:
    """``"zero"`` -> ("zero", 0.0); ``"normal:STD"`` -> ("normal", STD). One-line error otherwise."""
    if init == "zero":
        return "zero", 0.0
    if init.startswith("normal:"):
        try:
            std = float(init.split(":", 1)[1])
        except ValueError:
            std = float("nan")
        if math.isfinite(std) and std > 0:
            return "normal", std
    raise LeadingTermsError(f"bad --init {init!r}: use zero or normal:STD with STD > 0 (e.g. normal:0.02)")


def validate(cfg: TrainConfig) -> None:
    """Refuse impossible settings with a one-line error (corpus-independent checks)."""
    def positive_int(name: str, value: int | None, allow_none: bool = False) -> None:
        if value is None and allow_none:
            return
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise LeadingTermsError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")

    positive_int("layers", cfg.layers)
    positive_int("batch_size", cfg.batch_size)
    positive_int("grad_accum", cfg.grad_accum)
    positive_int("log_every", cfg.log_every)
    positive_int("checkpoint_every", cfg.checkpoint_every, allow_none=True)
    positive_int("eval_sequences", cfg.eval_sequences, allow_none=True)
    if not isinstance(cfg.lr, (int, float)) or not math.isfinite(cfg.lr) or cfg.lr <= 0:
        raise LeadingTermsError(f"--lr must be a finite number > 0, got {cfg.lr!r}")
    if (cfg.steps is None) == (cfg.epochs is None):
        raise LeadingTermsError("give exactly one of --steps and --epochs")
    positive_int("steps", cfg.steps, allow_none=True)
    positive_int("epochs", cfg.epochs, allow_none=True)
    if not isinstance(cfg.keep_last, int) or cfg.keep_last < 0:
        raise LeadingTermsError(f"--keep-last must be an integer >= 0, got {cfg.keep_last!r}")
    if cfg.dtype not in DTYPES:
        raise LeadingTermsError(f"--dtype must be one of {', '.join(DTYPES)}, got {cfg.dtype!r}")
    if cfg.optimizer not in OPTIMIZERS:
        raise LeadingTermsError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
    bad = [k for k in cfg.track if k not in TRACK_KINDS]
    if bad:
        raise LeadingTermsError(f"unknown tracking kind {bad[0]!r}; choose from {', '.join(TRACK_KINDS)}")
    parse_init(cfg.init)
    if cfg.resume and cfg.overwrite:
        raise LeadingTermsError("--resume and --overwrite contradict each other; give one")


def resume_mismatch(saved: TrainConfig, new: TrainConfig) -> str | None:
    """The first field that differs and forbids resuming, as ``"lr 0.1 != 0.01"``; else None."""
    for name in RESUME_MUST_MATCH:
        a, b = getattr(saved, name), getattr(new, name)
        if name == "checkpoint_every":
            a, b = saved.ckpt_every, new.ckpt_every
        if a != b:
            return f"{name} {a!r} (saved) != {b!r}"
    return None
