"""Reading a finished (or running) training run: :func:`load_run`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from leadingterms.errors import LeadingTermsError
from leadingterms.persist import folder_of, read_json
from leadingterms.training.checkpoints import checkpoint_paths, list_checkpoints, load_checkpoint_raw
from leadingterms.training.config import TrainConfig
from leadingterms.training.rundir import BASIS_DIR, CONFIG_FILE, SUMMARY_FILE
from leadingterms.training.tracking import METRICS_FILE, read_metrics

if TYPE_CHECKING:
    from leadingterms.basis import Basis
    from leadingterms.model import AttentionOnlyTransformer


@dataclass
class Run:
    """A run directory written by :func:`leadingterms.training.train`.

    - ``config``: the TrainConfig; ``info``: the whole RUN/config.json (corpus hash, V, T, N,
      steps_per_epoch, total_steps, model config, theory caveats).
    - ``metrics``: the metrics.jsonl rows (see leadingterms.training.tracking), ascending step.
    - ``summary``: summary.json, or None while the run is unfinished.
    - ``checkpoints``: {step: path of step_{s:06d}.safetensors}, ascending.
    """

    path: Path
    config: TrainConfig
    info: dict[str, Any]
    metrics: list[dict[str, Any]]
    summary: dict[str, Any] | None
    checkpoints: dict[int, Path]

    def _step(self, step: int | None) -> int:
        if not self.checkpoints:
            raise LeadingTermsError(f"run {self.path} has no checkpoints")
        if step is None:
            return max(self.checkpoints)
        if step not in self.checkpoints:
            raise LeadingTermsError(
                f"run {self.path} has no checkpoint at step {step}; available: {sorted(self.checkpoints)}"
            )
        return step

    def load_checkpoint(self, step: int | None = None, *,
                        device: torch.device | str | None = None) -> AttentionOnlyTransformer:
        """The model (AttentionOnlyTransformer, eval mode) at checkpoint ``step`` (None: the latest)."""
        from leadingterms.model import AttentionOnlyTransformer

        s = self._step(step)
        groups, meta = load_checkpoint_raw(self.path, s)
        init = str((meta.get("model") or {}).get("init", self.config.init))
        model = AttentionOnlyTransformer.from_state_dict(groups["model"], init=init, device=device)
        return model.eval()

    def checkpoint_state(self, step: int | None = None) -> tuple[dict[str, dict[str, torch.Tensor]],
                                                                 dict[str, Any]]:
        """Raw checkpoint: ({"model", "shadow", "optim"} tensors, metadata)."""
        return load_checkpoint_raw(self.path, self._step(step))

    def shadow_weights(self, step: int | None = None) -> dict[str, torch.Tensor]:
        """The shadow weights (docs/theory.md §5) at checkpoint ``step`` (model parameter names): stored
        with the checkpoint, or replayed from the run's corpus up to it (:mod:`.replay`) where the
        checkpoint policy left them out."""
        from leadingterms.corpus.store import load_store
        from leadingterms.training.replay import shadow_at

        s = self._step(step)
        if "shadow" not in self.config.track:
            raise LeadingTermsError(f"run {self.path} did not track the shadow")
        groups, _ = self.checkpoint_state(s)
        if groups["shadow"]:
            from leadingterms.shadow import Shadow

            sh = Shadow(int(self.info["V"]), int(self.info["T"]), self.config.layers, self.config.lr)
            sh.load_state_dict(groups["shadow"])
            return sh.weights()
        store = load_store(self.config.corpus)
        if store.content_hash != self.info.get("corpus_hash"):
            used = self.info.get("corpus_hash")
            raise LeadingTermsError(f"cannot replay the shadow of {self.path}: its corpus {store.path} has "
                                    f"changed (hash {store.content_hash}, the run used {used})")
        return shadow_at(self.path, s, cfg=self.config, store=store).weights()

    def basis(self) -> Basis:
        """The full-corpus basis the run compared with (--stats DIR or RUN/basis/)."""
        from leadingterms.basis import load_basis

        return load_basis(Path(self.config.stats) if self.config.stats else self.path / BASIS_DIR)


def load_run(run_dir: str | Path) -> Run:
    """Read RUN/config.json, metrics.jsonl, summary.json and the checkpoint list (``run_dir``: the run
    folder, or one of those files in it)."""
    p = folder_of(run_dir, (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE))
    if not p.is_dir():
        raise LeadingTermsError(f"run directory not found: {p} (make one with `leadingterms train --out {p}`)")
    info = read_json(p / CONFIG_FILE, what="run config")
    if not isinstance(info, dict) or "config" not in info:
        raise LeadingTermsError(f"{p / CONFIG_FILE} is not a leadingterms train config")
    summary = read_json(p / SUMMARY_FILE, what="run summary") if (p / SUMMARY_FILE).is_file() else None
    return Run(
        path=p,
        config=TrainConfig.from_json(info["config"]),
        info=info,
        metrics=read_metrics(p),
        summary=summary,
        checkpoints={s: checkpoint_paths(p, s)[0] for s in list_checkpoints(p)},
    )
