"""``leadingterms.train``: the training stage's public API (implemented in leadingterms.training).

``train(TrainConfig(...)) -> RunResult`` and ``load_run(RUN) -> Run``; see the package docs.
"""

from leadingterms.training import Run, RunResult, TrainConfig, load_run, train

__all__ = ["Run", "RunResult", "TrainConfig", "load_run", "train"]
