"""``leadingterms explore``: a self-contained HTML page to browse every token's associations (thin CLI layer)."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.cli import Command
from leadingterms.explore import ExploreConfig, ExploreResult, build_explorer


def show(result: ExploreResult) -> Iterator[str]:
    learned = (f", learned weights of {result.layers} layer(s) at steps {result.steps}" if result.steps else "")
    yield (f"wrote {result.out} ({result.bytes / 2**20:.2f} MiB): {result.V} tokens, top-{result.k} "
           f"lists{learned}; open it in a browser (no server needed)")


COMMAND = Command(
    name="explore",
    help="write a self-contained HTML page to browse every token's associations",
    description="Write one HTML file (inline data, no server, no network) with a search box over the "
    "vocabulary and a card per token: the top-k of every basis readout (next and previous tokens, context, "
    "keys attended to, value and composition rows, interchangeable tokens) and, with --run, of the learned "
    "W_O, V^(l), V^(l)·W_O and W^(l) at several checkpoints (a slider), under the normalisations none, freq, "
    "pmi and centred (docs/theory.md §7.3). Listed tokens link to their cards.",
    config=ExploreConfig,
    run=build_explorer,
    show=show,
)
