"""The shadow at a checkpoint that does not hold it: replayed from the batches seen.

The shadow (docs/theory.md §5) is a pure function of the batches of the steps taken, and the data
order is a pure function of (seed, step) (:mod:`.data`). A checkpoint without the shadow state
(the early log-spaced ones, see :mod:`.checkpoints`) is completed by loading the newest earlier
checkpoint that holds it (or starting from zero) and re-running the shadow steps in between, with
the same code: on the CPU the result is bit-identical to the uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from leadingterms.corpus.store import TokenStore
from leadingterms.shadow import Shadow
from leadingterms.training.checkpoints import checkpoint_meta, list_checkpoints, load_checkpoint_raw
from leadingterms.training.config import TrainConfig
from leadingterms.training.data import DataOrder


def step_tokens(store: TokenStore, order: DataOrder, step: int) -> np.ndarray:
    """(B·K, T+1) int64 rows of the whole batch of optimizer step ``step``."""
    return np.asarray(store.tokens[order.step_rows(step)], dtype=np.int64)


def shadow_at(run_dir: str | Path, step: int, *, cfg: TrainConfig, store: TokenStore,
              device: torch.device | str = "cpu") -> Shadow:
    """The shadow after ``step`` updates of the run in ``run_dir`` (its checkpoints up to ``step``)."""
    order = DataOrder(store.N, cfg.batch_size, cfg.grad_accum, cfg.seed)
    shadow = Shadow(store.V, store.T, cfg.layers, cfg.lr, device=device)
    held = [s for s in list_checkpoints(run_dir) if 0 < s <= step and checkpoint_meta(run_dir, s).get("shadow")]
    if held:
        groups, _ = load_checkpoint_raw(run_dir, held[-1])
        shadow.load_state_dict(groups["shadow"])
    for s in range(shadow.step, step):
        shadow.update(step_tokens(store, order, s))
    return shadow
