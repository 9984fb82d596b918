"""Progress bars (tqdm on stderr, with rate and ETA)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_YES = ("1", "true", "yes")


def progress_enabled() -> bool:
    """Bars are drawn when stderr is a terminal (a log file or pipe gets none: no bar text mixed into
    the lines around it). ``LEADINGTERMS_PROGRESS=1`` forces them on, ``LEADINGTERMS_NO_PROGRESS=1`` off."""
    if os.environ.get("LEADINGTERMS_NO_PROGRESS", "").lower() in _YES:
        return False
    if os.environ.get("LEADINGTERMS_PROGRESS", "").lower() in _YES:
        return True
    return sys.stderr.isatty()


def bar(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it",
        unit_scale: bool = False, initial: int = 0) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr showing rate and ETA (``initial``: items already done,
    e.g. by an earlier run that is resumed)."""
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale, initial=initial,
                    disable=not progress_enabled(), dynamic_ncols=True, leave=False)


def meter(*, total: float | None, desc: str = "", unit: str = "B", unit_scale: bool = True) -> Any:
    """A tqdm bar advanced by hand (``.update(n)``, ``.close()``), e.g. bytes of a file read."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, disable=not progress_enabled(),
                dynamic_ncols=True, leave=False)
