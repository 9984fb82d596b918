"""``leadingterms associations``: top-k tokens of one row/column of a basis matrix (SPEC §6)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from leadingterms.associations import BASIS_NAMES


def register(sub: Any) -> None:
    p = sub.add_parser(
        "associations",
        help="top-k associated tokens of TOKEN in a basis matrix",
        description="Print the top-k tokens (as strings, with values) of the row of TOKEN in a basis "
        "matrix: bigram=B̄, context=Φ̄, value=Φ̄ᵀB̄ᵀ, attention=Q̄, interchange-next=B̄ᵀB̄, "
        "interchange-prev=B̄B̄ᵀ, composition=Ḡ. --column reads the column instead.",
    )
    p.add_argument("token", metavar="TOKEN", help="a token string of the vocabulary")
    p.add_argument("--stats", type=Path, required=True, metavar="DIR",
                   help="basis directory from `leadingterms stats`")
    p.add_argument("--basis", choices=BASIS_NAMES, default="bigram", help="which matrix (default: bigram)")
    p.add_argument("--k", type=int, default=10, help="how many tokens (default 10)")
    p.add_argument("--column", action="store_true", help="read the column of TOKEN instead of its row")
    p.add_argument("--exclude-self", action="store_true", help="leave TOKEN itself out of the list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leadingterms.associations import AssociationsConfig, run_associations

    cfg = AssociationsConfig(stats=args.stats, token=args.token, basis=args.basis, k=args.k,
                             column=args.column, exclude_self=args.exclude_self)
    header, top = run_associations(cfg)
    print(header)
    width = max((len(repr(t)) for t, _ in top), default=5)
    for rank, (tok, value) in enumerate(top, start=1):
        print(f"{rank:>4}  {tok!r:<{width}}  {value:+.6e}")
    return 0
