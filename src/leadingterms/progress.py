"""Progress bars (tqdm on stderr, with rate and ETA) and the device choice."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

import torch

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


def resolve_device(name: str | None) -> torch.device:
    """``None``/``"auto"`` -> cuda if available else cpu; refuse cuda where there is none."""
    from leadingterms.errors import LeadingTermsError

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LeadingTermsError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise LeadingTermsError(f"unknown device {name!r}; use cpu or cuda") from None
