"""Reading a finished (or running) training run: :func:`load_run`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from leadingterms.errors import LeadingTermsError
from leadingterms.persist import folder_of, read_json
from leadingterms.training.checkpoints import (
    check_checkpoint_config,
    checkpoint_paths,
    list_checkpoints,
    load_checkpoint_raw,
)
from leadingterms.training.config import TrainConfig
from leadingterms.training.rundir import BASIS_DIR, CONFIG_FILE, SUMMARY_FILE, info_config, read_run_info
from leadingterms.training.tracking import METRICS_FILE, check_metrics_complete, read_metrics

if TYPE_CHECKING:
    from leadingterms.basis import Basis
    from leadingterms.corpus.store import TokenStore
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
        groups, meta = self.checkpoint_state(s)
        init = str((meta.get("model") or {}).get("init", self.config.init))
        model = AttentionOnlyTransformer.from_state_dict(groups["model"], init=init, device=device)
        return model.eval()

    def checkpoint_state(self, step: int | None = None, *, mmap: bool = False
                         ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
        """Raw checkpoint: ({"model", "shadow", "optim"} tensors, metadata), verified to be this run's (run id,
        corpus hash, config) and finite; ``mmap``: memory-mapped tensors."""
        s = self._step(step)
        groups, meta = load_checkpoint_raw(self.path, s, mmap=mmap,
                                           expect={"run_id": self.info.get("run_id"),
                                                   "corpus_hash": self.info.get("corpus_hash")})
        check_checkpoint_config(meta, self.config, where=f"checkpoint of step {s} in {self.path}")
        return groups, meta

    def store(self, *, missing_ok: bool = False) -> TokenStore | None:
        """The run's token store, verified to be the corpus the run was trained on (its content hash is
        the one RUN/config.json recorded): a store rebuilt from other text is refused, naming both hashes.
        ``missing_ok``: None when the store is gone (moved or deleted), for readers that can do without it."""
        from leadingterms.corpus.store import META_FILE, load_store

        if missing_ok and not (Path(self.config.corpus) / META_FILE).is_file():
            return None
        store = load_store(self.config.corpus)
        used = self.info.get("corpus_hash")
        if store.content_hash != used:
            raise LeadingTermsError(
                f"the corpus of run {self.path} changed: {store.path} now has hash {store.content_hash}, the run "
                f"was trained on {used}; restore that corpus, or retrain on this one with `leadingterms train "
                f"--force`")
        return store

    def shadow_weights(self, step: int | None = None) -> dict[str, torch.Tensor]:
        """The shadow weights (docs/theory.md §5) at checkpoint ``step`` (model parameter names): stored
        with the checkpoint, or replayed from the run's corpus up to it (:mod:`.replay`) where the
        checkpoint policy left them out."""
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
        store = self.store()
        assert store is not None
        return shadow_at(self.path, s, cfg=self.config, store=store).weights()

    def basis(self, *, mmap: bool = False, stats: str | Path | None = None) -> Basis:
        """The full-corpus basis the run compared with (--stats DIR or RUN/basis/), or the one in ``stats``
        (a user's ``--stats`` next to ``--run``), checked to be of the run's corpus; ``mmap``: memory-mapped
        (:func:`leadingterms.basis.load_basis`)."""
        from leadingterms.basis import load_basis

        own = Path(self.config.stats) if self.config.stats else self.path / BASIS_DIR
        where = own if stats is None else Path(stats)
        basis = load_basis(where, mmap=mmap)
        used, made = self.info.get("corpus_hash"), basis.meta.get("corpus_hash")
        if made is not None and made != used:
            fix = (f"give a basis of that corpus, or leave out --stats to use the run's own ({own})" if stats else
                   f"recompute it with `leadingterms stats --corpus {self.config.corpus} --out {where} --force`")
            raise LeadingTermsError(f"the basis {where} was computed from corpus {made}; run {self.path} was "
                                    f"trained on {used}: {fix}")
        if (int(basis.V), int(basis.T)) != (self.info.get("V"), self.info.get("T")):
            raise LeadingTermsError(f"the basis {where} of run {self.path} has V={basis.V}, T={basis.T}; the "
                                    f"run has V={self.info.get('V')}, T={self.info.get('T')}")
        return basis


def load_run(run_dir: str | Path) -> Run:
    """Read RUN/config.json, metrics.jsonl, summary.json and the checkpoint list (``run_dir``: the run
    folder, or one of those files in it)."""
    p = folder_of(run_dir, (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE))
    if not p.is_dir():
        raise LeadingTermsError(f"run directory not found: {p} (make one with `leadingterms train --out {p}`)")
    info = read_run_info(p)  # schema-checked
    config = info_config(info, p / CONFIG_FILE)
    summary = read_json(p / SUMMARY_FILE, what="run summary") if (p / SUMMARY_FILE).is_file() else None
    if summary is not None and not isinstance(summary, dict):
        raise LeadingTermsError(f"{p / SUMMARY_FILE} is corrupt: not a JSON object; retrain with --force")
    metrics = read_metrics(p)
    checkpoints = {s: checkpoint_paths(p, s)[0] for s in list_checkpoints(p)}
    # the log must hold every logged step up to the newest checkpoint (and the last step of a finished run)
    upto = max(checkpoints, default=-1)
    if summary is not None and summary.get("diverged") is None and isinstance(summary.get("steps"), int):
        upto = max(upto, summary["steps"])
    check_metrics_complete(metrics, log_every=config.log_every, upto=upto, where=p / METRICS_FILE)
    return Run(path=p, config=config, info=info, metrics=metrics, summary=summary, checkpoints=checkpoints)
