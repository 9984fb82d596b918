"""``leadingterms <command>``: a thin layer over the stage APIs, generated from their configs.

Each command module ``leadingterms/cli/<name>.py`` defines ``COMMAND``, a :class:`Command`
naming the config dataclass, the runner (config -> result) and how a result is shown. The
parser of every command is generated from its config's fields (:mod:`leadingterms.config`):
flags, help, defaults, choices, required options and mutual exclusions have one source.
Errors raised as :class:`~leadingterms.errors.LeadingTermsError` (and file-system errors)
become one line on stderr and exit code 2; notes a runner returns go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib
import os
import sys
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from leadingterms import __version__
from leadingterms.config import cli_fields, field_default, unwrap_optional
from leadingterms.errors import LeadingTermsError
from leadingterms.validate import flag as flag_of

#: Command modules, in pipeline order (module name under leadingterms.cli).
COMMAND_MODULES = (
    "corpus",
    "stats",
    "predict",
    "associations",
    "explore",
    "train",
    "sweep",
    "intervene",
    "inspect",
    "report",
    "compare",
    "compare_pretrained",
    "pretrain_small",
    "demo",
)


@dataclass(frozen=True)
class Command:
    """One ``leadingterms`` command: config dataclass -> ``run`` -> result -> ``show`` (stdout lines)."""

    name: str
    help: str
    description: str
    config: type
    run: Callable[[Any], Any]
    show: Callable[[Any], Iterable[str]]
    #: the options given on the command line -> config; default ``config(**given)``
    from_args: Callable[[dict[str, Any]], Any] | None = None
    #: a usage line where argparse's would mislead (options required unless another is given)
    usage: str | None = None


def load_command(module: str) -> Command:
    cmd = importlib.import_module(f"leadingterms.cli.{module}").COMMAND
    assert isinstance(cmd, Command)
    return cmd


def commands() -> list[Command]:
    """Every command, in pipeline order."""
    return [load_command(m) for m in COMMAND_MODULES]


# ----------------------------------------------------------------------------- the generator


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit code 2, and no abbreviated options: ``sweep
    --lr 0.3`` would be taken as ``--lrs 0.3``, ``--seed`` as ``--seeds``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _converter(tp: Any) -> Callable[[str], Any]:
    if tp in (int, float, str):
        return tp  # type: ignore[no-any-return]
    if tp is Path:
        return Path
    raise TypeError(f"no command-line converter for {tp!r}")


def _help(md: dict[str, Any], default: Any) -> str:
    text = str(md["help"])
    if "(default" in text or default in (dataclasses.MISSING, None, False, (), []) or md["negate"]:
        return text.replace("%", "%%")
    shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else default
    return f"{text} (default {shown})".replace("%", "%%")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one argument per command-line field of ``cls``; defaults are left to the dataclass
    (``argparse.SUPPRESS``), so the namespace holds only what was given."""
    groups: dict[str, Any] = {}
    exclusive: dict[str, Any] = {}
    for f, tp in cli_fields(cls):
        md = dict(f.metadata)
        default = field_default(f)
        container: Any = parser
        if md["group"]:
            if md["group"] not in groups:
                groups[md["group"]] = parser.add_argument_group(md["group"])
            container = groups[md["group"]]
        if md["exclusive"]:
            if md["exclusive"] not in exclusive:
                exclusive[md["exclusive"]] = container.add_mutually_exclusive_group()
            container = exclusive[md["exclusive"]]
        kwargs: dict[str, Any] = {"help": _help(md, default), "default": argparse.SUPPRESS}
        base, _ = unwrap_optional(tp)
        if base is bool:
            kwargs["action"] = "store_false" if md["negate"] else "store_true"
        else:
            elem = typing.get_args(base)[0] if typing.get_origin(base) in (list, tuple) else base
            conv = _converter(elem)
            if md["sep"]:
                sep = md["sep"]
                kwargs["type"] = lambda s, conv=conv, sep=sep: [conv(x.strip()) for x in s.split(sep) if x.strip()]
            else:
                kwargs["type"] = conv
                if md["repeat"]:
                    kwargs["action"] = "append"
                elif md["nargs"]:
                    kwargs["nargs"] = md["nargs"]
            if md["choices"] is not None and not md["sep"]:
                kwargs["choices"] = md["choices"]
            if md["metavar"]:
                kwargs["metavar"] = md["metavar"]
        if md["positional"]:
            if default is not dataclasses.MISSING:
                kwargs["nargs"] = kwargs.get("nargs") or "?"
            container.add_argument(f.name, **kwargs)
        else:
            if default is dataclasses.MISSING and md["cli_required"]:
                kwargs["required"] = True
            container.add_argument(md["flag"] or flag_of(f.name), dest=f.name, **kwargs)


def given_options(ns: argparse.Namespace) -> dict[str, Any]:
    """Namespace of a generated parser -> the options given on the command line."""
    return {k: v for k, v in vars(ns).items() if not k.startswith("_")}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``leadingterms`` parser: every command, or with ``only`` (a command's name) just that one."""
    parser = _Parser(
        prog="leadingterms",
        description="Gradient leading terms of attention-only transformers (Im et al., ICLR 2026).",
    )
    parser.add_argument("--version", action="version", version=f"leadingterms {__version__}")
    sub = parser.add_subparsers(dest="_command", metavar="COMMAND", parser_class=_Parser)
    modules: tuple[str, ...] = COMMAND_MODULES
    if only is not None and only.replace("-", "_") in COMMAND_MODULES:
        modules = (only.replace("-", "_"),)  # import only the command run (corpus never loads torch)
    for module in modules:
        cmd = load_command(module)
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.description, usage=cmd.usage)
        if only is None or only == cmd.name:
            add_config_arguments(p, cmd.config)
        p.set_defaults(_cmd=cmd)
    return parser


def print_note(name: str, note: str) -> None:
    """One note of command ``name`` on stderr (commands that report while they run call it directly)."""
    print(f"leadingterms {name}: note: {note}", file=sys.stderr, flush=True)


def _print_notes(name: str, result: Any) -> None:
    for note in getattr(result, "notes", None) or []:
        print_note(name, note)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args if not a.startswith("-")), None)
    parser = build_parser(only=chosen)
    try:
        ns = parser.parse_args(args)
    except SystemExit as exc:  # --help, --version, or a one-line usage error already printed
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    cmd: Command | None = getattr(ns, "_cmd", None)
    if cmd is None:
        parser.print_help()
        return 2
    try:
        given = given_options(ns)
        cfg = cmd.from_args(given) if cmd.from_args else cmd.config(**given)
        result = cmd.run(cfg)
        _print_notes(cmd.name, result)
        for line in cmd.show(result):
            print(line)
        return 0
    except LeadingTermsError as exc:
        print(f"leadingterms {cmd.name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"leadingterms {cmd.name}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if os.environ.get("LEADINGTERMS_DEBUG"):
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"leadingterms {cmd.name}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


def run() -> NoReturn:
    """The ``leadingterms`` console script: :func:`main`, then exit without the interpreter's final garbage
    collections, which traverse torch's object graph (0.2–0.4 s per command, measured); objects are still
    released by reference counting and every exit handler runs."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
