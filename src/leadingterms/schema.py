"""Schema checks of the JSON metadata every loader reads: types, required fields, consistency.

A violation is a one-line error naming the file and the field, e.g.
``corpus/corpus.json is corrupt: field 'seq_len' must be an integer >= 1, got 'abc'; rebuild it with ...``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadingterms.errors import LeadingTermsError


@dataclass(frozen=True)
class Field:
    """What a JSON field must hold: ``test(value)`` is True, described as ``what`` in errors."""

    test: Callable[[Any], bool]
    what: str
    optional: bool = False  # may be absent or null

    def or_null(self) -> Field:
        return Field(self.test, self.what + " or null", True)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


INT = Field(_int, "an integer")
POS_INT = Field(lambda v: _int(v) and v >= 1, "an integer >= 1")
NONNEG_INT = Field(lambda v: _int(v) and v >= 0, "an integer >= 0")
NUMBER = Field(_num, "a finite number")
POS_NUMBER = Field(lambda v: _num(v) and v > 0, "a finite number > 0")
STR = Field(lambda v: isinstance(v, str), "a string")
BOOL = Field(lambda v: isinstance(v, bool), "true or false")
OBJECT = Field(lambda v: isinstance(v, dict), "an object")
LIST = Field(lambda v: isinstance(v, list), "a list")
STR_LIST = Field(lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings")
INT_LIST = Field(lambda v: isinstance(v, list) and all(_int(x) for x in v), "a list of integers")


def one_of(*values: Any) -> Field:
    return Field(lambda v: v in values, "one of " + ", ".join(map(repr, values)))


def check_fields(obj: Any, fields: Mapping[str, Field], *, where: str | Path, fix: str) -> dict[str, Any]:
    """Return ``obj`` (a dict) when every field of ``fields`` is present (unless optional) and valid."""
    if not isinstance(obj, dict):
        raise LeadingTermsError(f"{where} is corrupt: it holds {type(obj).__name__}, not a JSON object; {fix}")
    for name, f in fields.items():
        if name not in obj or obj[name] is None:
            if f.optional:
                continue
            raise LeadingTermsError(f"{where} is corrupt: field {name!r} is missing; {fix}")
        if not f.test(obj[name]):
            shown = repr(obj[name])
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise LeadingTermsError(f"{where} is corrupt: field {name!r} must be {f.what}, got {shown}; {fix}")
    return obj


def check_that(ok: bool, where: str | Path, problem: str, fix: str) -> None:
    """One-line error ``WHERE is inconsistent: PROBLEM; FIX`` unless ``ok``."""
    if not ok:
        raise LeadingTermsError(f"{where} is inconsistent: {problem}; {fix}")
