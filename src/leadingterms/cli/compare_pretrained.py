"""``leadingterms compare-pretrained``: pretrained causal LMs across checkpoints (docs/theory.md §8)."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.cli import Command
from leadingterms.pretrained.compare import CompareConfig, CompareResult, run_compare, summary_lines


def show(result: CompareResult) -> Iterator[str]:
    yield from summary_lines(result)
    labels = [e["label"] for e in result.index["entries"]]
    more = f" … ({len(labels)} checkpoints)" if len(labels) > 1 else ""
    files = f"{result.path / labels[0] / 'similarity.json'}{more}"
    figures = f", {len(result.figures) // 2} figures (PNG + SVG)" if result.figures else ""
    yield f"wrote {result.report} (open it in a browser); data: {result.path / 'index.json'}, {files}{figures}"


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
