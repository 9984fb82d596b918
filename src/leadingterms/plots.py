"""Figures of a training run: tracking curves, learned-vs-predicted heatmaps, P vs Δ, loss, per-layer readouts.

Every figure is written twice, as ``<stem>.png`` and ``<stem>.svg`` (atomically), by
:func:`leadingterms.plotting.save_figure`. Inputs are plain data: the list of records of ``RUN/metrics.jsonl`` and
(V, V) / (T,) tensors, so every function can be tested on fabricated data.

metrics record (one per logged step)::

    {"step": s, "epoch": e, "loss": l, "val_loss": v | None,
     "closed_form": {"W_O": {"cos": c, "rel": r}, "layers.0.W": {...}, ...},
     "shadow": {...same keys...}, "second_order": {"W_O": {...}, "layers.0.V": {...}},
     "layer_spread": {"V": x, "W": x, "P": x}}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from leadingterms.analyses import readout_key
from leadingterms.metrics import frobenius_cosine
from leadingterms.plotting import pyplot, save_figure
from leadingterms.theory import LEARNED_READOUTS, WEIGHTS, parse_param

#: Prediction sources logged per step, in plotting order, with their legend labels.
PREDICTIONS: dict[str, str] = {
    "closed_form": "closed form (§3)",
    "second_order": "second order (§4)",
    "shadow": "shadow / path-dependent (§5)",
}
#: Weight kinds, in plotting order, with their titles (from the weight table).
WEIGHT_KINDS: dict[str, str] = {k: f"{WEIGHTS[k].symbol}  vs  {WEIGHTS[k].leading_term()}"
                                 for k in ("W_O", "V", "W", "P")}
_COLORS = {"closed_form": "#1f77b4", "second_order": "#2ca02c", "shadow": "#d62728"}
#: (line style, width): distinct so that coinciding curves stay visible
_STYLES = {"closed_form": ("-", 2.6), "second_order": ("--", 1.8), "shadow": ((0, (1.2, 1.6)), 2.0)}
#: Relative-error thresholds drawn on the tracking figure (the validity horizon's).
REL_THRESHOLDS = (0.05, 0.20)

def tracking_series(
    metrics: Sequence[Mapping[str, Any]], prediction: str, metric: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per weight kind: (steps (S,), values (S, n_layers)) of ``metric`` ("cos"/"rel") for one prediction.

    Column j is layer j (one column for W_O); NaN where a step did not log that weight
    (e.g. step 0, where the learned weight is zero). Steps with no value for the kind are dropped.
    """
    per_kind: dict[str, dict[int, dict[int, float]]] = {}
    for rec in metrics:
        block = rec.get(prediction) or {}
        step = int(rec["step"])
        for name, vals in block.items():
            try:
                kind, layer = parse_param(name)
            except ValueError:
                continue
            v = vals.get(metric) if isinstance(vals, Mapping) else None
            if v is None or not math.isfinite(float(v)):
                continue
            per_kind.setdefault(kind, {}).setdefault(step, {})[layer or 0] = float(v)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, by_step in per_kind.items():
        steps = np.array(sorted(by_step), dtype=np.int64)
        n_layers = 1 + max(max(d) for d in by_step.values())
        vals = np.full((len(steps), n_layers), np.nan)
        for i, s in enumerate(steps):
            for layer, v in by_step[int(s)].items():
                vals[i, layer] = v
        out[kind] = (steps, vals)
    return out


def plot_tracking(metrics: Sequence[Mapping[str, Any]], out_dir: str | Path, stem: str = "tracking") -> list[Path]:
    """The paper's tracking figure, extended: cosine (top) and relative error (bottom, log) vs step.

    One column per weight kind (W_O, V, W, P); one colour per prediction (closed form, second
    order, shadow); the line is the mean over layers and the shaded band the range across layers.
    Dotted lines mark the 5% and 20% relative-error thresholds.
    """
    plt = pyplot()
    fig, axes = plt.subplots(2, len(WEIGHT_KINDS), figsize=(4.2 * len(WEIGHT_KINDS), 6.4), sharex=True,
                             squeeze=False)
    series = {(p, m): tracking_series(metrics, p, m) for p in PREDICTIONS for m in ("cos", "rel")}
    for col, (kind, title) in enumerate(WEIGHT_KINDS.items()):
        for row, metric in enumerate(("cos", "rel")):
            ax = axes[row][col]
            drawn = False
            for pred, label in PREDICTIONS.items():
                data = series[(pred, metric)].get(kind)
                if data is None:
                    continue
                steps, vals = data
                with np.errstate(all="ignore"):
                    mean = np.nanmean(vals, axis=1)
                    lo, hi = np.nanmin(vals, axis=1), np.nanmax(vals, axis=1)
                if metric == "rel":
                    mean, lo, hi = (np.clip(a, 1e-16, None) for a in (mean, lo, hi))
                ls, lw = _STYLES[pred]
                ax.plot(steps, mean, color=_COLORS[pred], ls=ls, lw=lw, label=label)
                if vals.shape[1] > 1:
                    ax.fill_between(steps, lo, hi, color=_COLORS[pred], alpha=0.22, lw=0)
                drawn = True
            if metric == "rel":
                if drawn:
                    ax.set_yscale("log")
                for thr in REL_THRESHOLDS:
                    ax.axhline(thr, color="0.4", ls=":", lw=1)
                ax.set_xlabel("step")
            if row == 0:
                ax.set_title(title, fontsize=10)
            if col == 0:
                ax.set_ylabel("cosine similarity" if metric == "cos" else "relative error ‖W−Ŵ‖/‖W‖")
            if not drawn:
                ax.text(0.5, 0.5, "not logged", transform=ax.transAxes, ha="center", va="center", color="0.5")
            ax.grid(alpha=0.3)
    figure_legend(fig, axes, top=True)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return save_figure(fig, out_dir, stem, tight=False)


def figure_legend(fig: Any, axes: Any, *, top: bool = False, fontsize: float | None = None) -> None:
    """One legend for the whole figure, each label once (above the panels with ``top``, else below)."""
    handles, labels = [], []
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if not handles:
        return
    if top:
        fig.legend(handles, labels, loc="upper center", ncol=len(handles), frameon=False,
                   bbox_to_anchor=(0.5, 1.0))
    else:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(handles), 4), frameon=False,
                   fontsize=fontsize)


def plot_loss(metrics: Sequence[Mapping[str, Any]], out_dir: str | Path, stem: str = "loss") -> list[Path]:
    """Training loss (and validation loss where logged) vs step."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    steps = [int(r["step"]) for r in metrics if r.get("loss") is not None]
    ax.plot(steps, [float(r["loss"]) for r in metrics if r.get("loss") is not None], label="train loss")
    val = [(int(r["step"]), float(r["val_loss"])) for r in metrics if r.get("val_loss") is not None]
    if val:
        ax.plot(*zip(*val, strict=True), "o-", ms=3, label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("mean cross-entropy (nats)")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return save_figure(fig, out_dir, stem, tight=False)


def plot_heatmaps(
    pairs: Sequence[tuple[str, torch.Tensor, str, torch.Tensor]],
    token_ids: Sequence[int],
    vocab: Sequence[str] | None,
    out_dir: str | Path,
    stem: str = "heatmaps",
) -> list[Path]:
    """One row per (learned title, learned (V,V), predicted title, predicted (V,V)): side-by-side heatmaps.

    Both matrices are restricted to ``token_ids`` (rows and columns, e.g. the 50 most frequent
    tokens) and each is divided by the 99th percentile of its absolute entries on that block
    (colours clipped at ±1), so the panels compare patterns, not scales, and a few large entries
    do not wash the rest out. Rows are the matrix's row index (current / context / query token),
    columns its column index. The cosine in the title is over the (unscaled) block.
    """
    plt = pyplot()
    idx = torch.as_tensor(list(token_ids), dtype=torch.long)
    labels = [vocab[i] if vocab is not None else str(i) for i in idx.tolist()]
    n = len(labels)
    size = max(3.5, 0.1 * n + 1.0)  # inches per panel
    fig, axes = plt.subplots(len(pairs), 2, figsize=(2 * size + 2.2, (size + 0.5) * len(pairs) + 0.6),
                             squeeze=False)
    fig.subplots_adjust(left=0.09, right=0.86, bottom=0.6 / ((size + 0.5) * len(pairs) + 0.6) + 0.02,
                        top=1 - 0.35 / ((size + 0.5) * len(pairs) + 0.6), wspace=0.08, hspace=0.18)
    im = None
    for row, (t_learned, learned, t_pred, pred) in enumerate(pairs):
        raw = [mat.detach().to("cpu", torch.float64)[idx][:, idx] for mat in (learned, pred)]
        cos = frobenius_cosine(raw[0], raw[1])
        blocks = []
        for b in raw:
            scale = float(torch.quantile(b.abs().flatten(), 0.99))
            scale = scale if scale > 0 else float(b.abs().max())
            blocks.append((b / scale if scale > 0 else b).numpy())
        for col, (title, block) in enumerate(((t_learned, blocks[0]), (t_pred, blocks[1]))):
            ax = axes[row][col]
            im = ax.imshow(block, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
            ax.set_title(title + (f"   (cos on block {cos:.3f})" if col == 1 else ""), fontsize=10)
            fs = 6 if n > 30 else 8
            ax.tick_params(length=0)
            # the same tokens index every panel: rows labelled on the left, columns at the bottom
            ax.set_yticks(range(n) if col == 0 else [])
            if col == 0:
                ax.set_yticklabels(labels, fontsize=fs)
            ax.set_xticks(range(n) if row == len(pairs) - 1 else [])
            if row == len(pairs) - 1:
                ax.set_xticklabels(labels, rotation=90, fontsize=fs)
    if im is not None:
        cax = fig.add_axes((0.89, 0.3, 0.018, 0.4))
        fig.colorbar(im, cax=cax, label="entry / 99th percentile of |entry| (clipped)")
    return save_figure(fig, out_dir, stem, tight=False)


def plot_positional(
    P_learned: Mapping[int, torch.Tensor],
    P_predicted: torch.Tensor,
    out_dir: str | Path,
    stem: str = "positional",
) -> list[Path]:
    """Learned relative-position biases P^(l)[m] of each layer and the prediction c(s)η⁴Δ[m] vs offset m."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    pred = P_predicted.detach().to("cpu", torch.float64).numpy()
    m = np.arange(len(pred))
    for layer, P in sorted(P_learned.items()):
        ax.plot(m, P.detach().to("cpu", torch.float64).numpy(), lw=1.4, label=f"learned P^({layer})")
    ax.plot(m, pred, "k--", lw=1.4, label="predicted c(s)η⁴Δ")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("offset m = t − j  (0 = attend to self)")
    ax.set_ylabel("bias")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir, stem, tight=False)


def layer_readout_panels(readouts: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(panel title, table ("planted"/"overlap"), readout label with ^(l)) for every per-layer readout present."""
    panels: list[tuple[str, str, str]] = []
    for rd in readouts:
        for table in ("planted", "overlap"):
            for r in rd.get(table) or []:
                if r["layer"] is None:
                    continue
                key = readout_key(r)
                title = (f"planted {r['kind']} pairs: {key}" if table == "planted"
                         else f"overlap@{rd['k']}: {key} vs {r['predicted']}")
                if (title, table, key) not in panels:
                    panels.append((title, table, key))
    return panels


def plot_layer_readouts(series: Sequence[tuple[str, Mapping[str, Any], Any]], out_dir: str | Path,
                        stem: str = "layer_readouts") -> list[Path] | None:
    """Per-layer readouts of learned weights: fraction of planted pairs found in the top-k (dashed: the same
    readout of the basis matrix the weight is predicted by, e.g. Q̄ for W^(l)), and overlap@k with the
    prediction, against the layer (integer ticks); one line per (label, readouts record, colour).
    None when no run has a per-layer readout."""
    panels = layer_readout_panels([rd for _, rd, _ in series])
    if not panels:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels) + 0.4, 3.6), squeeze=False)
    max_layer = 0
    for label, rd, colour in series:
        for ax, (_, table, key) in zip(axes[0], panels, strict=True):
            rows = [r for r in rd.get(table) or [] if r["layer"] is not None and readout_key(r) == key]
            if not rows:
                continue
            x = [r["layer"] for r in rows]
            y = [r["hits"] / r["total"] if table == "planted" and r["total"] else
                 (r["overlap"] if table == "overlap" else np.nan) for r in rows]
            max_layer = max(max_layer, *x)
            ax.plot(x, y, "o-", color=colour, lw=1.5, ms=4, label=label)
            if table == "planted":  # the same readout of the basis matrix the learned weight is predicted by
                basis_row = next((r for r in rd["planted"] if r["layer"] is None and r["source"]
                                  == LEARNED_READOUTS[rows[0]["source"]].matrix), None)
                if basis_row is not None and basis_row["total"]:
                    ax.axhline(basis_row["hits"] / basis_row["total"], color=colour, ls="--", lw=1)
                    ax.text(0.98, basis_row["hits"] / basis_row["total"], f"{basis_row['readout']} ",
                            transform=ax.get_yaxis_transform(), ha="right", va="bottom", fontsize=8, color=colour)
    for ax, (title, _, _) in zip(axes[0], panels, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("layer l")
        ax.set_xticks(range(max_layer + 1))
        ax.set_xlim(-0.3, max_layer + 0.3)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fraction found / overlap")
    if len(series) > 1:
        figure_legend(fig, axes, fontsize=7)
        fig.tight_layout(rect=(0, 0.14, 1, 1))
    else:
        fig.tight_layout()
    return save_figure(fig, out_dir, stem)
