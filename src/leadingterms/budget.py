"""Resource budgets: estimate memory and disk before allocating or writing, refuse in one line.

Commands call :func:`check_memory` / :func:`check_disk` with their estimate *before* the work
that needs it, so a refusal never leaves a half-done output behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from leadingterms.errors import LeadingTermsError

#: Share of available RAM a command may plan to use before it refuses. Override with the
#: environment variable ``LEADINGTERMS_MAX_MEMORY_SHARE`` (a number in (0, 1], e.g. ``0.8``).
DEFAULT_MEMORY_SHARE = 0.6
MEMORY_SHARE_ENV = "LEADINGTERMS_MAX_MEMORY_SHARE"


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def available_memory_bytes() -> int:
    """Memory available to this process now (MemAvailable on Linux, else total/2)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def memory_share() -> float:
    """The allowed share of available memory (``LEADINGTERMS_MAX_MEMORY_SHARE``, default 0.6)."""
    raw = os.environ.get(MEMORY_SHARE_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_MEMORY_SHARE
    try:
        share = float(raw)
    except ValueError:
        share = float("nan")
    if not 0.0 < share <= 1.0:
        raise LeadingTermsError(f"{MEMORY_SHARE_ENV}={raw!r} must be a number in (0, 1], e.g. 0.8")
    return share


def check_memory(needed_bytes: int, what: str, hint: str = "", share: float | None = None) -> None:
    """Refuse (one-line error) before allocating if ``needed_bytes`` exceeds the allowed share."""
    share = memory_share() if share is None else share
    avail = available_memory_bytes()
    if needed_bytes > int(avail * share):
        msg = (f"{what} needs about {format_bytes(needed_bytes)}, more than {share:.0%} of the "
               f"{format_bytes(avail)} available")
        raise LeadingTermsError(msg + (f"; {hint}" if hint else ""))


def free_disk_bytes(path: str | os.PathLike[str]) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return int(shutil.disk_usage(p).free)


def check_disk(path: str | os.PathLike[str], needed_bytes: int, what: str, hint: str = "") -> None:
    """Refuse (one-line error) when the file system of ``path`` has less than ``needed_bytes`` free."""
    free = free_disk_bytes(path)
    if needed_bytes > free:
        msg = (f"{what} needs about {format_bytes(needed_bytes)} of disk in {path}, but only "
               f"{format_bytes(free)} is free")
        raise LeadingTermsError(msg + (f"; {hint}" if hint else ""))


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
