"""``leadingterms associations``: top-k tokens of one row/column of a basis matrix (docs/theory.md §7.3)."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.associations import AssociationsConfig, AssociationsResult, run_associations
from leadingterms.cli import Command


def show(result: AssociationsResult) -> Iterator[str]:
    yield result.header
    width = max((len(repr(t)) for t, _ in result.top), default=5)
    for rank, (tok, value) in enumerate(result.top, start=1):
        yield f"{rank:>4}  {tok!r:<{width}}  {value:+.6e}"


COMMAND = Command(
    name="associations",
    help="top-k associated tokens of TOKEN in a basis matrix",
    description="Print the top-k tokens (as strings, with values) of the row of TOKEN in a basis matrix: "
    "bigram=B̄, context=Φ̄, value=Φ̄ᵀB̄ᵀ, attention=Q̄, interchange-next=B̄ᵀB̄, interchange-prev=B̄B̄ᵀ, "
    "composition=Ḡ. --column reads the column instead.",
    config=AssociationsConfig,
    run=run_associations,
    show=show,
)
