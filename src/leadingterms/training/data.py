"""Deterministic data order: which sequences each optimizer step uses.

Epoch e visits the N training sequences in the order of a permutation drawn from
``numpy.random.default_rng([seed, e])``. Optimizer step s (0-based: the update that takes
the weights from s to s+1) uses positions ``[p, p + B*K)`` of its epoch's permutation, with
``e = s // steps_per_epoch`` and ``p = (s % steps_per_epoch) * B*K``; the last step of an epoch
may be smaller (every sequence is seen exactly once per epoch). That slice is split into K
micro-batches of B sequences (gradient accumulation). The data-order state is therefore the
pair (epoch, position), a pure function of (seed, step): resuming at a step is exact, and no
generator state needs saving.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leadingterms.errors import LeadingTermsError


@dataclass(frozen=True)
class DataOrder:
    """Batches of row indices into the (N, T+1) token array."""

    N: int
    batch_size: int
    grad_accum: int
    seed: int

    def __post_init__(self) -> None:
        if self.batch_size > self.N:
            raise LeadingTermsError(
                f"--batch-size {self.batch_size} exceeds the {self.N} training sequences; "
                f"use --batch-size {self.N} for full-batch GD"
            )

    @property
    def step_size(self) -> int:
        """Sequences per optimizer step (B*K, capped at N)."""
        return min(self.batch_size * self.grad_accum, self.N)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.N / self.step_size)

    def permutation(self, epoch: int) -> np.ndarray:
        """(N,) int64: the visiting order of epoch ``epoch``."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.N)

    def state(self, step: int) -> dict[str, int]:
        """Data-order state before optimizer step ``step``: {"epoch", "position"}."""
        return {"epoch": step // self.steps_per_epoch, "position": (step % self.steps_per_epoch) * self.step_size}

    def step_batches(self, step: int) -> list[np.ndarray]:
        """Row indices of the micro-batches of optimizer step ``step`` (each sorted, int64)."""
        st = self.state(step)
        rows = self.permutation(st["epoch"])[st["position"]: st["position"] + self.step_size]
        return [np.sort(rows[i: i + self.batch_size]) for i in range(0, len(rows), self.batch_size)]

    def step_rows(self, step: int) -> np.ndarray:
        """Sorted row indices of the whole batch of optimizer step ``step`` (the union of its micro-batches)."""
        return np.sort(np.concatenate(self.step_batches(step)))

    def epoch_float(self, steps_done: int) -> float:
        """Epochs completed after ``steps_done`` optimizer steps (fractional)."""
        return steps_done / self.steps_per_epoch
