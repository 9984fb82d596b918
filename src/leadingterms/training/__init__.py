"""Training runner with live tracking against the theory (``leadingterms train``).

- :class:`TrainConfig` -> :func:`train` -> :class:`RunResult` (writes RUN/, see .runner).
- :func:`load_run` -> :class:`Run` (config, metrics, summary, checkpoints, load_checkpoint).
"""

from leadingterms.training.config import TrainConfig
from leadingterms.training.runner import RunResult, train
from leadingterms.training.runs import Run, load_run

__all__ = ["Run", "RunResult", "TrainConfig", "load_run", "train"]
