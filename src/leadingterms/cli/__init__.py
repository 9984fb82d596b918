"""``leadingterms <command>``: a thin layer over the stage APIs.

Each command lives in ``leadingterms/cli/<name>.py`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (``args -> int`` exit code).  Errors raised as
:class:`~leadingterms.errors.LeadingTermsError` become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from leadingterms import __version__
from leadingterms.errors import LeadingTermsError

#: Command modules, in pipeline order (module name under leadingterms.cli).
COMMAND_MODULES = [
    "corpus",
    "stats",
    "predict",
    "associations",
    "train",
    "intervene",
    "report",
    "compare_pretrained",
    "pretrain_small",
    "demo",
]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="leadingterms",
        description="Gradient leading terms of attention-only transformers (Im et al., ICLR 2026).",
    )
    parser.add_argument("--version", action="version", version=f"leadingterms {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"leadingterms.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LeadingTermsError as exc:
        print(f"leadingterms {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"leadingterms {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if os.environ.get("LEADINGTERMS_DEBUG"):
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"leadingterms {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
