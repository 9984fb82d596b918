"""Corpus statistics ("basis functions", docs/theory.md §2), exact and streaming.

``tokens`` everywhere is an (N, T+1) integer array (numpy, memmap or torch): row i holds
x_0..x_T, inputs x_0..x_{T-1}, targets y_t = x_{t+1}. Every statistic is normalised once by
1/(N·T), N = the number of rows passed, so a call on one batch gives that batch's statistics
(docs/theory.md §5).

- :func:`bigram_context_stats` -> (B_bar, Phi_bar, Pi, A_bar)
- :func:`attention_stats` -> (Q_bar, Delta) for a given M (dense, or factors (Lf, Rf))
- :func:`compute_basis` -> :class:`Basis` (all of them, M = B̄ᵀB̄Φ̄ from sparse counts)
- :func:`save_basis` / :func:`load_basis`; :func:`run_stats` (the ``stats`` command)

Algorithm (see :mod:`leadingterms.basis.stats`): streaming over chunks of rows, O(N·T²) pair
work by gathers and scatter-adds; no one-hot matrices, no T×T×T tensor.

**top_k.** ``compute_basis(..., top_k=K)`` ranks tokens by their frequency over *all*
positions 0..T of all rows (ties: lower id first). The K most frequent become ids 0..K−1 in
that order; every other token becomes ``<other>``, id K. The statistics are then exactly those
of the remapped corpus over the K+1 vocabulary (u = 1/(K+1)). ``basis.meta["token_ids"]``
lists the original id of each of the K+1 rows (−1 for ``<other>``), and ``basis.vocab`` the
strings. With K >= V nothing is remapped and ``top_k`` is recorded as None.
"""

from leadingterms.basis._tokens import OTHER_TOKEN
from leadingterms.basis.io import BASIS_TENSORS, EXTRA_TENSORS, load_basis, save_basis
from leadingterms.basis.runner import StatsConfig, StatsResult, run_stats
from leadingterms.basis.stats import (
    attention_kernel,
    attention_stats,
    bigram_context_stats,
    chunk_rows_for,
    compute_basis,
    estimate_bytes,
)
from leadingterms.basis.types import Basis

__all__ = [
    "BASIS_TENSORS",
    "EXTRA_TENSORS",
    "OTHER_TOKEN",
    "Basis",
    "StatsConfig",
    "StatsResult",
    "attention_kernel",
    "attention_stats",
    "bigram_context_stats",
    "chunk_rows_for",
    "compute_basis",
    "estimate_bytes",
    "load_basis",
    "run_stats",
    "save_basis",
]
