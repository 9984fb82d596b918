"""``leadingterms pretrain-small``: train a small Pythia-like GPT-NeoX suite with log-spaced checkpoints."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.cli import Command
from leadingterms.pretrained.suite import SuiteConfig, SuiteResult, run_suite


def show(result: SuiteResult) -> Iterator[str]:
    r = result.record
    yield (f"{len(r['checkpoints'])} checkpoints in {result.path} ({r['n_params']:,} parameters, "
           f"{r['seconds']} s); loss {r['loss'][0]:.3f} -> {r['loss'][-1]:.3f}")


COMMAND = Command(
    name="pretrain-small",
    help="train a small GPT-NeoX on a corpus and save Pythia-style checkpoints (CPU, minutes)",
    description="Train a small standard GPTNeoXForCausalLM with a BPE tokenizer trained on the corpus and save "
    "log-spaced checkpoints OUT/step0, step1, step2, step4, ... (HF format, with the tokenizer). Then run "
    "`leadingterms compare-pretrained --model OUT --revisions local ...`.",
    config=SuiteConfig,
    run=run_suite,
    show=show,
)
