"""Typed command configurations: each command's dataclass is the single source of its options.

A config field declared with :func:`option` carries its help text, CLI spelling, metavar, group,
check and (for lists) how it is given on the command line. :mod:`leadingterms.cli` generates
every command's parser from these fields, and :func:`check_config` runs the same checks for API
callers, so the CLI and the library accept and refuse exactly the same inputs.

Conventions (one vocabulary across commands): ``--out`` creates an output, ``--run`` reads an
existing training run, ``--force`` replaces an existing output; a corpus source is given by the
fields of :class:`leadingterms.corpus.sources.SourceConfig`, which every config that reads a corpus
extends (``--text``, ``--jsonl``,
``--dataset``, ``--dataset-config``, ``--split``, ``--text-field``, ``--max-documents``, ...).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

from leadingterms.errors import LeadingTermsError
from leadingterms.validate import flag as flag_of

Check = Callable[[Any, str], Any]


def option(default: Any = dataclasses.MISSING, *, help: str, flag: str | None = None, metavar: str | None = None,
           check: Check | None = None, choices: tuple[Any, ...] | None = None, group: str | None = None,
           positional: bool = False, repeat: bool = False, sep: str | None = None, nargs: str | None = None,
           exclusive: str | None = None, negate: bool = False, cli: bool = True, cli_required: bool = True,
           default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with its command-line description.

    - ``flag``: the option's spelling (default ``--field-name``); ``positional``: a positional argument.
    - ``check``: ``check(value, field_name)`` raising a one-line error (see :mod:`leadingterms.validate`);
      skipped when the value is None and None is the default.
    - ``choices``: allowed values (checked, and listed in the help).
    - ``repeat``: a list given by repeating the flag; ``sep``: a list given as one ``a,b,c`` string;
      ``nargs``: argparse nargs for lists (e.g. ``"+"``).
    - ``exclusive``: fields sharing this name are mutually exclusive (at most one given).
    - ``negate``: a bool defaulting to True, turned off by ``flag`` (e.g. ``--no-plots``).
    - ``cli=False``: an API-only field (not on the command line).
    - ``cli_required=False``: a field without a default that the command line may omit because the
      command takes it from elsewhere (``train --resume`` reads it from the saved run).
    """
    meta = {"help": help, "flag": flag, "metavar": metavar, "check": check, "choices": choices, "group": group,
            "positional": positional, "repeat": repeat, "sep": sep, "nargs": nargs, "exclusive": exclusive,
            "negate": negate, "cli": cli, "cli_required": cli_required}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def field_default(f: dataclasses.Field[Any]) -> Any:
    """The default of a dataclass field (calling its factory); MISSING when required."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def resolved_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation (``from __future__ import annotations`` safe)."""
    return typing.get_type_hints(cls)


def unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``int | None`` -> (int, True); ``int`` -> (int, False)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else tp), True
    return tp, False


def cli_fields(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Any]]:
    """(field, resolved type) of every command-line field of ``cls``, in declaration order."""
    hints = resolved_types(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("cli", False):
            yield f, hints[f.name]


def check_config(cfg: Any) -> None:
    """Run every field's ``check`` and ``choices``, the config's own ``check()`` if it has one
    (cross-field rules), then the mutual exclusions. One-line errors; nothing is modified."""
    given: dict[str, list[str]] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        md = f.metadata
        default = field_default(f)
        if md.get("exclusive") and value != default:
            given.setdefault(md["exclusive"], []).append(f.name)
        if value is None and default is None:
            continue
        items = value if md.get("repeat") or md.get("sep") or md.get("nargs") else [value]
        if md.get("choices") is not None:
            for v in items:
                if v not in md["choices"]:
                    opts = ", ".join(str(c) for c in md["choices"])
                    raise LeadingTermsError(f"{flag_of(f.name)} must be one of {opts}, got {v!r}")
        if md.get("check") is not None:
            md["check"](value, f.name)
    own = getattr(cfg, "check", None)
    if callable(own):
        own()
    for names in given.values():
        if len(names) > 1:
            raise LeadingTermsError(f"{' and '.join(flag_of(n) for n in names)} exclude each other; give one")
