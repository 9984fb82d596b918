"""Progress bars (tqdm on stderr, with rate and ETA)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars are on unless ``LEADINGTERMS_NO_PROGRESS=1`` is set."""
    return os.environ.get("LEADINGTERMS_NO_PROGRESS", "") not in ("1", "true", "yes")


def bar(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it",
        unit_scale: bool = False) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr showing rate and ETA."""
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit=unit, unit_scale=unit_scale,
                    disable=not progress_enabled(), dynamic_ncols=True, leave=False)
