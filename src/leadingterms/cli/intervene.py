"""``leadingterms intervene``: causal intervention on a trained checkpoint (thin CLI layer)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from leadingterms.cli import Command
from leadingterms.intervene import (
    INTERVENTION_FILE,
    InterventionConfig,
    InterventionResult,
    format_table,
    run_intervention,
)


def show(result: InterventionResult) -> Iterator[str]:
    yield format_table(result)
    yield f"wrote {Path(result.run or '.') / INTERVENTION_FILE}"


COMMAND = Command(
    name="intervene",
    help="dataset loss with each weight's predicted direction removed / replaced by the closed form",
    description="For each weight and layer of a run's checkpoint, evaluate the dataset loss as trained, after "
    "removing the weight's projection on its predicted direction (W <- W - <W,T>/||T||^2 T with T = B̄ for W_O, "
    "Φ̄ᵀB̄ᵀ for V, Q̄ for W, Δ for P) and after replacing it by its closed-form prediction at that step "
    "(docs/theory.md §7.2). Prints a table and writes RUN/intervention.json.",
    config=InterventionConfig,
    run=run_intervention,
    show=show,
)
