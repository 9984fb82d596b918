"""Figures of ``leadingterms compare`` (PNG + SVG via :func:`leadingterms.plotting.save_figure`).

Inputs are the run records and fits of :mod:`.records` (plain data), so every figure can be drawn from
fabricated records in tests. Colours follow the learning rate (viridis, small η dark), line styles the
group (runs that differ only in η and seed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leadingterms.plots import figure_legend
from leadingterms.plotting import pyplot, save_figure
from leadingterms.theory import WEIGHTS
from leadingterms.training.tracking import PREDICTION_NAMES

_KIND_ORDER = ("W_O", "V", "W", "P")
_GROUP_STYLES = ("-", "--", "-.", ":")
_THRESHOLD_MARKERS = {"5%": "o", "20%": "s"}
_THRESHOLD_LINES = {"5%": "--", "20%": "-"}


def weight_title(kind: str) -> str:
    """"W_O" or "V^(l), earliest layer"."""
    w = WEIGHTS[kind]
    return w.symbol if not w.per_layer else f"{w.symbol}, earliest layer"


def lr_colours(records: Sequence[Mapping[str, Any]]) -> dict[float, Any]:
    """η -> colour (viridis over the distinct learning rates in increasing order)."""
    plt = pyplot()
    lrs = sorted({float(r["lr"]) for r in records})
    cmap = plt.get_cmap("viridis")
    return {lr: cmap(0.85 * i / max(len(lrs) - 1, 1)) for i, lr in enumerate(lrs)}


def _groups(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["group"] for r in records))


def _headline_kinds(records: Sequence[Mapping[str, Any]]) -> list[str]:
    present = {wk for r in records for wk in (r["horizon"]["by_weight_kind"].get(r["horizon"]["headline"]) or {})}
    return [k for k in _KIND_ORDER if k in present]


def plot_horizon_scaling(records: Sequence[Mapping[str, Any]], fits: Sequence[Mapping[str, Any]],
                         out_dir: str | Path, stem: str = "horizon_scaling") -> list[Path]:
    """Headline horizon against η, log-log: steps (top) and s·η (bottom), one column per weight kind.

    Filled markers: runs whose error crossed the threshold for good (circle 5%, square 20%); open
    triangles at the last step: runs where the prediction held (a lower bound, not fitted). Lines: the
    fitted power laws (legend: exponent α of s ∝ η^α and the number of runs fitted); grey dotted: 1/η
    (top) and a constant (bottom), the scaling docs/theory.md (6.6) predicts, through the fitted points.
    """
    plt = pyplot()
    kinds = _headline_kinds(records)
    groups = _groups(records)
    ncol = max(len(kinds), 1)
    fig, axes = plt.subplots(2, ncol, figsize=(3.9 * ncol + 0.6, 7.4), squeeze=False)
    colours = lr_colours(records)
    lr_all = np.array(sorted({float(r["lr"]) for r in records}))
    x_fit = np.geomspace(lr_all.min() / 1.3, lr_all.max() * 1.3, 50) if lr_all.size else np.array([])
    for col, kind in enumerate(kinds):
        for gi, group in enumerate(groups):
            recs = [r for r in records if r["group"] == group]
            for t, marker in _THRESHOLD_MARKERS.items():
                for r in recs:
                    h = r["horizon"]
                    c = ((h["by_weight_kind"].get(h["headline"]) or {}).get(kind) or {}).get(t, "absent")
                    if c == "absent":
                        continue
                    for row, value in enumerate(("step", "s_eta")):
                        ax = axes[row][col]
                        if c is None:  # held to the end: the horizon is beyond the last logged step
                            y = h["last_step"] * (r["lr"] if value == "s_eta" else 1.0)
                            ax.scatter([r["lr"]], [y], marker="^", s=46, facecolors="none",
                                       edgecolors=[colours[r["lr"]]], linewidths=1.3, zorder=3)
                        else:
                            ax.scatter([r["lr"]], [c[value]], marker=marker, s=40, color=colours[r["lr"]],
                                       edgecolors="k", linewidths=0.5, zorder=3)
                fit = next((f for f in fits if f["group"] == group and f["headline"] and f["weight"] == kind
                            and f["threshold"] == t), None)
                if fit is None or fit["exponent"] is None:
                    continue
                label = (f"{t}: α = {fit['exponent']:+.2f} ({fit['n_points']} of {fit['n_runs']} runs)"
                         + (f", {group}" if len(groups) > 1 else ""))
                ls = _THRESHOLD_LINES[t] if len(groups) == 1 else _GROUP_STYLES[gi % len(_GROUP_STYLES)]
                axes[0][col].plot(x_fit, fit["prefactor"] * x_fit ** fit["exponent"], ls=ls, color="0.25", lw=1.2,
                                  label=label)
                axes[1][col].plot(x_fit, fit["prefactor"] * x_fit ** (fit["exponent"] + 1.0), ls=ls, color="0.25",
                                  lw=1.2)
                if t == "20%" and gi == 0:  # the theory's scaling through the fitted points (geometric means)
                    lrs = np.array(fit["lrs"], dtype=float)
                    x0 = float(np.exp(np.log(lrs).mean()))
                    y0 = fit["prefactor"] * x0 ** fit["exponent"]
                    axes[0][col].plot(x_fit, y0 * x0 / x_fit, ":", color="0.55", lw=1.4,
                                      label="∝ 1/η (theory (6.6))")
                    axes[1][col].plot(x_fit, np.full_like(x_fit, y0 * x0), ":", color="0.55", lw=1.4)
        axes[0][col].set_title(weight_title(kind), fontsize=10)
        for row in range(2):
            ax = axes[row][col]
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(alpha=0.3, which="both")
            ax.set_xticks(lr_all)
            ax.set_xticklabels([f"{v:g}" for v in lr_all])
            ax.minorticks_off()
            _log_ticks(ax.yaxis, *ax.get_ylim())
        axes[1][col].set_xlabel("learning rate η")
        if axes[0][col].get_legend_handles_labels()[0]:
            axes[0][col].legend(fontsize=7, frameon=False, loc="best")
    axes[0][0].set_ylabel("horizon (steps)")
    axes[1][0].set_ylabel("horizon s·η")
    heads = sorted({PREDICTION_NAMES[r["horizon"]["headline"]] for r in records if r["horizon"]["headline"]})
    fig.suptitle(f"Validity horizon of the headline prediction ({', '.join(heads)}) against η — filled: crossed "
                 "for good (● 5%, ■ 20%); △: held to the last step", fontsize=10)
    handles = [plt.Line2D([], [], ls="", marker="o", color=c, markeredgecolor="k", label=f"η = {lr:g}")
               for lr, c in colours.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return save_figure(fig, out_dir, stem)


def _log_ticks(axis: Any, lo: float, hi: float) -> None:
    """Labelled ticks on a log axis spanning [lo, hi] (plain numbers): at 1, 2, 5 × 10^k, or at every
    integer multiple of 10^k when the axis spans less than a decade."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    subs = (1.0, 2.0, 5.0) if hi > 10 * lo else (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
    axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=15))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _run_style(records: Sequence[Mapping[str, Any]]) -> list[tuple[Any, str]]:
    colours = lr_colours(records)
    groups = _groups(records)
    return [(colours[r["lr"]], _GROUP_STYLES[groups.index(r["group"]) % len(_GROUP_STYLES)]) for r in records]


def plot_runs_tracking(records: Sequence[Mapping[str, Any]], out_dir: str | Path,
                       stem: str = "tracking_overlay") -> list[Path]:
    """Relative error of each run's headline prediction (mean over layers) against the step (top) and s·η
    (bottom), one column per weight kind; dotted: 5% and 20%. If the expansion is in s·η (3.9), the bottom
    curves of different η lie on top of each other."""
    plt = pyplot()
    kinds = _headline_kinds(records)
    ncol = max(len(kinds), 1)
    fig, axes = plt.subplots(2, ncol, figsize=(3.9 * ncol + 0.6, 6.8), squeeze=False)
    for r, (colour, ls) in zip(records, _run_style(records), strict=True):
        c = r["curves"]
        series = c["rel"].get(r["horizon"]["headline"] or "", {})
        steps = np.array(c["step"], dtype=float)
        for col, kind in enumerate(kinds):
            if kind not in series:
                continue
            y = np.array([np.nan if v is None else v for v in series[kind]], dtype=float)
            for row, x in enumerate((steps, steps * r["lr"])):
                axes[row][col].plot(x, np.clip(y, 1e-16, None), ls=ls, color=colour, lw=1.5, label=r["name"])
    for col, kind in enumerate(kinds):
        axes[0][col].set_title(WEIGHTS[kind].symbol + (" (mean over layers)" if WEIGHTS[kind].per_layer else ""),
                               fontsize=10)
        for row in range(2):
            ax = axes[row][col]
            ax.set_yscale("log")
            for thr in (0.05, 0.20):
                ax.axhline(thr, color="0.4", ls=":", lw=1)
            ax.grid(alpha=0.3)
            ax.set_xlabel("step" if row == 0 else "s·η (log scale)")
            if row == 1:
                ax.set_xscale("log")
    axes[0][0].set_ylabel("relative error ‖W−Ŵ‖/‖W‖")
    axes[1][0].set_ylabel("relative error ‖W−Ŵ‖/‖W‖")
    figure_legend(fig, axes, fontsize=7)
    fig.suptitle("Relative error of each run's headline prediction (shadow under SGD, closed form under GD)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    return save_figure(fig, out_dir, stem)


def plot_runs_loss(records: Sequence[Mapping[str, Any]], out_dir: str | Path,
                   stem: str = "loss_overlay") -> list[Path]:
    """Training loss (full-batch, over the evaluation sequences) of every run against the step and s·η."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), squeeze=False)
    for r, (colour, ls) in zip(records, _run_style(records), strict=True):
        c = r["curves"]
        pts = [(s, v) for s, v in zip(c["step"], c["loss"], strict=True) if v is not None]
        if not pts:
            continue
        s, v = np.array(pts, dtype=float).T
        axes[0][0].plot(s, v, ls=ls, color=colour, lw=1.5, label=r["name"])
        axes[0][1].plot(s * r["lr"], v, ls=ls, color=colour, lw=1.5)
    for ax, xl in zip(axes[0], ("step", "s·η"), strict=True):
        ax.set_xlabel(xl)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean cross-entropy (nats)")
    figure_legend(fig, axes, fontsize=7)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return save_figure(fig, out_dir, stem)
