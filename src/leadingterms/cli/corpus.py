"""``leadingterms corpus``: text / JSON Lines / HF dataset / synthetic -> token store."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.cli import Command
from leadingterms.corpus.pipeline import CorpusConfig, CorpusResult, run_corpus, summary


def show(result: CorpusResult) -> Iterator[str]:
    if result.reused:
        yield f"reusing the token store in {result.store.path} (same inputs and settings; --force rebuilds)"
    yield summary(result.store)


COMMAND = Command(
    name="corpus",
    help="tokenize a corpus into a token store (DIR/tokens*.npy + DIR/corpus.json)",
    description="Read a corpus (a text file, JSON Lines, a Hugging Face dataset, or by default the embedded "
    "synthetic stories) as a stream, tokenize it (in this process, or on Dask workers with --workers/--scheduler, "
    "with the same result) and write (N, T+1) sequences to a sharded token store (docs/theory.md §7.1).",
    config=CorpusConfig,
    run=run_corpus,
    show=show,
)
