"""The one configuration of ``leadingterms train`` (:class:`TrainConfig`) and the resume rule."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from leadingterms.config import option
from leadingterms.errors import LeadingTermsError
from leadingterms.validate import (
    DTYPE_NAMES,
    device_spec,
    init_spec,
    nonnegative_int,
    positive_float,
    positive_int,
)

#: Prediction kinds that can be tracked during training (keys of a metrics.jsonl row).
TRACK_KINDS = ("closed_form", "shadow", "second_order")
OPTIMIZERS = ("sgd", "adam")

#: Fields that must be equal for ``--resume`` to continue a run bit-identically. The others
#: (steps/epochs = how far to train, device, keep_last, force/resume, progress, stats dir)
#: may change between invocations.
RESUME_MUST_MATCH = (
    "layers", "lr", "batch_size", "grad_accum", "dtype", "init", "seed", "optimizer",
    "log_every", "checkpoint_every", "track", "eval_sequences",
)
_MODEL = "model and optimisation"
_LOG = "logging and checkpoints"


@dataclass(kw_only=True)
class TrainConfig:
    """Everything ``leadingterms train`` needs. Exactly one of ``steps`` / ``epochs`` is set.

    One optimizer step sees ``batch_size * grad_accum`` sequences (their union is the step's batch;
    B*K >= N, i.e. B = N and K = 1, is full-batch GD). ``init``: ``zero`` (the theory's setting) or
    ``normal:STD``. Logged steps: every ``log_every`` plus step 0 and the last; checkpoints: every
    ``checkpoint_every`` (default ``log_every``) plus steps 0, 1, 2, 4, 8, ... and the last.
    With ``resume``, the command line may omit every option but ``--out``: the saved run's are used.
    """

    corpus: str = option(help="token store from `leadingterms corpus`", metavar="DIR", cli_required=False)
    out: str = option(help="run folder to create (or continue with --resume)", metavar="RUN")
    layers: int = option(help="number of attention layers", metavar="L", check=positive_int, group=_MODEL,
                         cli_required=False)
    lr: float = option(help="learning rate", metavar="ETA", check=positive_float, group=_MODEL,
                       cli_required=False)
    batch_size: int = option(help="sequences per micro-batch (N: full-batch GD)", metavar="B", check=positive_int,
                             group=_MODEL, cli_required=False)
    grad_accum: int = option(1, help="micro-batches per optimizer step", metavar="K", check=positive_int,
                             group=_MODEL)
    steps: int | None = option(None, help="number of optimizer steps", metavar="S", check=positive_int,
                               exclusive="length", group=_MODEL)
    epochs: int | None = option(None, help="number of passes over the corpus", metavar="E", check=positive_int,
                                exclusive="length", group=_MODEL)
    dtype: str = option("float32", help="model dtype", choices=DTYPE_NAMES, group=_MODEL)
    init: str = option("zero", help="initialisation: zero (the theory's) or normal:STD", metavar="zero|normal:STD",
                       check=init_spec, group=_MODEL)
    seed: int = option(0, help="seed of the data order and of a normal init", check=nonnegative_int, group=_MODEL)
    optimizer: str = option("sgd", help="sgd (the paper's) or adam (outside the theory)", choices=OPTIMIZERS,
                            group=_MODEL)
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto", check=device_spec, group=_MODEL)
    log_every: int = option(10, help="log metrics every N steps", metavar="N", check=positive_int, group=_LOG)
    checkpoint_every: int | None = option(None, help="checkpoint every N steps (default: --log-every), plus "
                                          "steps 0, 1, 2, 4, 8, ...", metavar="N", check=positive_int, group=_LOG)
    keep_last: int = option(3, help="checkpoints kept besides the log-spaced ones", metavar="K",
                            check=nonnegative_int, group=_LOG)
    track: tuple[str, ...] = option(TRACK_KINDS, help="predictions to track (comma-separated, or none)",
                                    metavar="KINDS", sep=",", choices=TRACK_KINDS, group=_LOG)
    eval_sequences: int | None = option(None, help="logged loss over the first M training sequences "
                                        "(default: all)", metavar="M", check=positive_int, group=_LOG)
    stats: str | None = option(None, help="precomputed basis (`leadingterms stats`) instead of RUN/basis/",
                               metavar="DIR")
    resume: bool = option(False, help="continue the run in RUN from its last checkpoint", exclusive="existing")
    force: bool = option(False, help="start RUN over (its basis cache is kept)", exclusive="existing")
    progress: bool = option(True, help="progress bar", cli=False)

    def __post_init__(self) -> None:
        track = list(self.track)  # a list when read back from JSON or the command line
        self.track = () if track == ["none"] else tuple(track)

    def check(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise LeadingTermsError("give exactly one of --steps and --epochs")

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


def resume_mismatch(saved: TrainConfig, new: TrainConfig) -> str | None:
    """The first field that differs and forbids resuming, as ``"lr 0.1 (saved) != 0.01"``; else None."""
    for name in RESUME_MUST_MATCH:
        a, b = getattr(saved, name), getattr(new, name)
        if name == "checkpoint_every":
            a, b = saved.ckpt_every, new.ckpt_every
        if a != b:
            return f"{name} {a!r} (saved) != {b!r}"
    return None
