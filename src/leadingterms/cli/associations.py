"""``leadingterms associations``: top-k tokens of rows/columns of basis matrices and learned weights
(docs/theory.md §7.3)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from leadingterms.associations import AssociationsConfig, AssociationsResult, run_associations
from leadingterms.cli import Command
from leadingterms.theory import BASIS_NAMES


def show(result: AssociationsResult) -> Iterator[str]:
    if result.as_json:
        yield json.dumps(result.to_json(), indent=1, ensure_ascii=False)
        return
    norm = "" if result.normalize == "none" else f" [normalize {result.normalize}]"
    for i, x in enumerate(result.lists):
        if i:
            yield ""
        step = f" at step {result.step}" if result.step is not None and x.readout not in BASIS_NAMES else ""
        yield (f"{x.readout} {x.symbol}{step}: {x.direction} of {x.token!r} ({x.index}); "
               f"top {len(x.top)} {x.listed}s{norm}")
        width = max((len(repr(t)) for t, _ in x.top), default=5)
        for rank, (tok, value) in enumerate(x.top, start=1):
            yield f"{rank:>4}  {tok!r:<{width}}  {value:+.6e}"


COMMAND = Command(
    name="associations",
    help="top-k associated tokens of TOKENs in basis matrices and learned weights",
    description="Print the top-k tokens (as strings, with values) of the row of each TOKEN in basis matrices "
    "(bigram=B̄, context=Φ̄, value=Φ̄ᵀB̄ᵀ, attention=Q̄, interchange-next=B̄ᵀB̄, interchange-prev=B̄B̄ᵀ, "
    "composition=Ḡ) and, with --run, in the learned W_O, V^(l), V^(l)·W_O and W^(l) of a checkpoint. "
    "--column reads columns; --normalize divides by frequencies or subtracts the mean row "
    "(docs/theory.md §7.3); --json prints JSON. The basis and checkpoint are memory-mapped.",
    config=AssociationsConfig,
    run=run_associations,
    show=show,
)
