"""Output reuse: an output whose recorded fingerprint matches the request is loaded, not rebuilt.

Every stage that writes a cacheable output (token store, basis, the training run's basis cache,
the pretrained comparison's statistics) records in its JSON metadata the keys that identify
its inputs and settings; :func:`reuse` is the one place that decides whether to load it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from leadingterms.errors import LeadingTermsError
from leadingterms.persist import read_json

T = TypeVar("T")


def reuse(meta_path: str | os.PathLike[str], expected: Mapping[str, Any], load: Callable[[], T], *,
          force: bool = False, accept: Callable[[dict[str, Any]], bool] | None = None,
          notes: list[str] | None = None) -> T | None:
    """``load()`` when ``meta_path`` holds a JSON object whose entries equal ``expected`` (and that
    ``accept`` approves); None when there is nothing to reuse, ``force`` is set, or it differs.

    A matching output that fails to load (torn or corrupt files) is not reused: a line saying so is
    appended to ``notes`` and None is returned, so the caller rebuilds it.
    """
    p = Path(meta_path)
    if force or not p.is_file():
        return None
    try:
        meta = read_json(p)
    except LeadingTermsError:
        return None
    if not isinstance(meta, dict) or any(meta.get(k) != v for k, v in expected.items()):
        return None
    if accept is not None and not accept(meta):
        return None
    try:
        return load()
    except LeadingTermsError as exc:
        if notes is not None:
            notes.append(f"the existing output at {p.parent} is unusable ({exc}); rebuilding it")
        return None


def refuse_other(meta_path: str | os.PathLike[str], expected: Mapping[str, Any], *, force: bool,
                 what: str) -> None:
    """The one overwrite policy (issue 10): an existing output whose metadata ``meta_path`` records other
    inputs or settings than ``expected`` is replaced only with ``force``; otherwise a one-line error
    names the first difference. An output whose metadata is missing or unreadable is not refused (it is
    incomplete or broken, and gets rebuilt); one with the same inputs is for :func:`reuse`."""
    p = Path(meta_path)
    if force or not p.is_file():
        return
    try:
        meta = read_json(p)
    except LeadingTermsError:
        return
    if not isinstance(meta, dict):
        return
    for k, v in expected.items():
        if meta.get(k) != v:
            raise LeadingTermsError(
                f"{what} {p.parent} was made from other inputs ({k} {meta.get(k)!r} there, {v!r} now); "
                "pass --force to replace it, or choose another --out")
