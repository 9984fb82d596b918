"""``leadingterms compare-pretrained``: pretrained causal LMs across checkpoints (docs/theory.md §8)."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.cli import Command
from leadingterms.pretrained.compare import CompareConfig, CompareResult, run_compare, summary_lines


def show(result: CompareResult) -> Iterator[str]:
    yield from summary_lines(result)
    yield f"wrote {result.path}/index.json, one similarity.json per checkpoint and {len(result.figures)} figures"


COMMAND = Command(
    name="compare-pretrained",
    help="compare the predicted features with pretrained LMs (Pythia-style checkpoints)",
    description="Feed the K most frequent corpus tokens (under each model's own tokenizer) alone through causal "
    "LMs (GPT-NeoX/Pythia, GPT-2, Llama family) and compare, per layer, the Gram matrices of the residual streams "
    "with Φ̄ᵀB̄ᵀ and of the query-key scores with Q̄ (docs/theory.md §8). Offline first: with HF_HUB_OFFLINE or "
    "no network, hub models come from the local cache.",
    config=CompareConfig,
    run=run_compare,
    show=show,
)
