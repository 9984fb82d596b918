"""The ``train`` stage: the paper's toy transformer trained with SGD, tracked live against the theory.

- :class:`TrainConfig` -> :func:`train` -> :class:`RunResult` (writes RUN/, see .rundir).
- :func:`load_run` -> :class:`Run` (config, metrics, summary, checkpoints, load_checkpoint).

Modules: .config (the config and the resume rule), .data (data order), .rundir (the run
directory, resume, the run's basis), .loop (model, optimizer, shadow, one step, the loop),
.tracking (metrics rows, horizons), .checkpoints, .runner (``train``), .runs (``load_run``).
"""

from leadingterms.training.config import TrainConfig
from leadingterms.training.runner import RunResult, train
from leadingterms.training.runs import Run, load_run

__all__ = ["Run", "RunResult", "TrainConfig", "load_run", "train"]
