"""Matplotlib set-up and figure saving shared by every figure of the project (Agg, PNG + SVG).

Figures are written twice, ``<stem>.png`` and ``<stem>.svg``, atomically; SVG output is
deterministic (fixed hash salt, no date) and keeps text as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from leadingterms.persist import atomic_path


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend with the project's settings."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "leadingterms"
    plt.rcParams["svg.fonttype"] = "none"  # text stays text in SVG: smaller, faster, searchable
    return plt


def save_figure(fig: Any, out_dir: str | Path, stem: str, *, tight: bool = False) -> list[Path]:
    """Write ``fig`` as ``out_dir/stem.png`` and ``out_dir/stem.svg``; close it; return the paths.

    ``tight``: crop to the drawn content (one extra layout pass per format; figures that place
    their axes themselves leave it off)."""
    plt = pyplot()
    out = Path(out_dir)
    paths = []
    try:
        for fmt in ("png", "svg"):
            path = out / f"{stem}.{fmt}"
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=110, bbox_inches="tight" if tight else None,
                            metadata={"Date": None} if fmt == "svg" else None)
                tmp.chmod(0o644)
            paths.append(path)
    finally:
        plt.close(fig)
    return paths
