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
#: Compute precision of the model's forward/backward: fp32; tf32 (CUDA matmuls in TensorFloat-32);
#: bf16 (autocast to bfloat16). Master weights stay float32; the logged loss, the comparisons and
#: the shadow (float64) are computed in full precision.
PRECISIONS = ("fp32", "tf32", "bf16")
#: Default periodic checkpoint interval (steps) and number of log-spaced early checkpoints.
CHECKPOINT_EVERY = 100
EARLY_CHECKPOINTS = 6
#: Default logged-loss sample: this many optimizer steps' worth of sequences (at most all of them).
EVAL_STEPS = 2

#: Fields that must be equal for ``--resume`` to continue a run bit-identically. The others
#: (steps/epochs = how far to train, device, keep_last, force/resume, dry_run, progress, stats dir)
#: may change between invocations.
RESUME_MUST_MATCH = (
    "layers", "lr", "batch_size", "grad_accum", "dtype", "precision", "init", "seed", "optimizer",
    "log_every", "checkpoint_every", "early_checkpoints", "track", "eval_sequences",
)
_MODEL = "model and optimisation"
_LOG = "logging and checkpoints"


@dataclass(kw_only=True)
class TrainConfig:
    """Everything ``leadingterms train`` needs. Exactly one of ``steps`` / ``epochs`` is set.

    One optimizer step sees ``batch_size * grad_accum`` sequences (their union is the step's batch;
    B*K >= N, i.e. B = N and K = 1, is full-batch GD). ``init``: ``zero`` (the theory's setting) or
    ``normal:STD``. Logged steps: every ``log_every`` plus step 0 and the last; the logged loss is over
    the first ``eval_sequences`` sequences (default: those of ``EVAL_STEPS`` = 2 optimizer steps, at
    most all). Checkpoints (see :mod:`.checkpoints`): the first ``early_checkpoints`` of steps 0, 1, 2,
    4, 8, ..., every ``checkpoint_every`` steps (the last ``keep_last`` of those kept) and the last
    step, so a run keeps at most ``early_checkpoints + keep_last`` of them however long it is.
    With ``resume``, the command line may omit every option but ``--out``: the saved run's are used.
    ``dry_run``: print the estimate (time, memory, disk) and stop without writing RUN.
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
    precision: str = option("fp32", help="compute precision of the model's forward/backward: fp32, tf32 (CUDA "
                            "matmuls in TensorFloat-32) or bf16 (bfloat16 autocast); weights stay float32, "
                            "tracking is in float32/float64", choices=PRECISIONS, group=_MODEL)
    init: str = option("zero", help="initialisation: zero (the theory's) or normal:STD", metavar="zero|normal:STD",
                       check=init_spec, group=_MODEL)
    seed: int = option(0, help="seed of the data order and of a normal init", check=nonnegative_int, group=_MODEL)
    optimizer: str = option("sgd", help="sgd (the paper's) or adam (outside the theory)", choices=OPTIMIZERS,
                            group=_MODEL)
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto", check=device_spec, group=_MODEL)
    log_every: int = option(10, help="log metrics every N steps", metavar="N", check=positive_int, group=_LOG)
    checkpoint_every: int = option(CHECKPOINT_EVERY, help="checkpoint every N steps, plus the early "
                                   "log-spaced steps and the last step", metavar="N", check=positive_int,
                                   group=_LOG)
    early_checkpoints: int = option(EARLY_CHECKPOINTS, help="log-spaced early checkpoints kept: the first K of "
                                    "steps 0, 1, 4, 16, 64, ...", metavar="K", check=nonnegative_int, group=_LOG)
    keep_last: int = option(3, help="most recent checkpoints kept besides the early ones", metavar="K",
                            check=nonnegative_int, group=_LOG)
    track: tuple[str, ...] = option(TRACK_KINDS, help="predictions to track (comma-separated, or none)",
                                    metavar="KINDS", sep=",", choices=TRACK_KINDS, group=_LOG)
    eval_sequences: int | None = option(None, help="logged loss over the first M training sequences "
                                        f"(default: those of {EVAL_STEPS} optimizer steps, at most all)",
                                        metavar="M", check=positive_int, group=_LOG)
    stats: str | None = option(None, help="precomputed basis (`leadingterms stats`) instead of RUN/basis/",
                               metavar="DIR")
    resume: bool = option(False, help="continue the run in RUN from its last checkpoint", exclusive="existing")
    force: bool = option(False, help="start RUN over (its basis cache is kept)", exclusive="existing")
    dry_run: bool = option(False, help="print the estimate (time per step, total time, peak memory, disk) and "
                           "stop without writing RUN")
    progress: bool = option(True, help="progress bar", cli=False)

    def __post_init__(self) -> None:
        track = list(self.track)  # a list when read back from JSON or the command line
        self.track = () if track == ["none"] else tuple(track)

    def check(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise LeadingTermsError("give exactly one of --steps and --epochs")
        if self.precision != "fp32" and self.dtype != "float32":
            raise LeadingTermsError(f"--precision {self.precision} keeps float32 master weights: use it with "
                                    f"--dtype float32, not {self.dtype}")

    def eval_count(self, N: int) -> int:
        """Sequences of the logged loss: ``eval_sequences``, default EVAL_STEPS steps' worth, at most N."""
        n = self.eval_sequences
        if n is None:
            n = EVAL_STEPS * self.batch_size * self.grad_accum
        return min(int(n), int(N))

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["track"] = list(self.track)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        # a null the field no longer allows (an older run's "default") takes today's default
        return cls(**{k: v for k, v in d.items() if k in fields and (v is not None or fields[k].default is None)})


def resume_mismatch(saved: TrainConfig, new: TrainConfig) -> str | None:
    """The first field that differs and forbids resuming, as ``"lr 0.1 (saved) != 0.01"``; else None."""
    for name in RESUME_MUST_MATCH:
        a, b = getattr(saved, name), getattr(new, name)
        if a != b:
            return f"{name} {a!r} (saved) != {b!r}"
    return None
