"""Figures of ``compare-pretrained``.

Reads ``OUT/index.json`` and ``OUT/<label>/similarity.json`` and writes (PNG + SVG):

- ``similarity_heatmap``: layer × checkpoint heatmaps of resid_pre, resid_mid, resid_post, qk_mean: the score
  (docs/theory.md (8.3)), its distance from the token-permuted null (8.5) and the token-centred variant (8.6);
- ``similarity_lines``: the same across checkpoints, one line per layer (dashed: the
  token-permuted null baseline averaged over layers), plus the model-level comparisons with B̄;
- ``similarity_heads``: per-head qk similarity, rows = (layer, head), columns = checkpoints.

The x axis is the training step (symlog) when every label carries one (``step<N>``), else the
labels in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leadingterms.persist import read_json

METRICS = ("resid_pre", "resid_mid", "resid_post", "qk_mean")
MODEL_LEVEL = ("direct_cos", "direct_gram", "logits_cos", "logits_gram")
FIGURES = ("similarity_heatmap", "similarity_lines", "similarity_heads")


def load_results(out_dir: str | Path) -> list[dict[str, Any]]:
    """The similarity.json records of OUT, in index order."""
    out = Path(out_dir)
    index = read_json(out / "index.json", what="compare-pretrained index")
    return [read_json(out / e["label"] / "similarity.json", what="similarity file") for e in index["entries"]]


def table(records: list[dict[str, Any]], metric: str) -> np.ndarray:
    """(layers, checkpoints) of one per-layer metric; NaN where a model has fewer layers."""
    L = max(r["n_layers"] for r in records)
    out = np.full((L, len(records)), np.nan)
    for j, r in enumerate(records):
        for row in r["layers"]:
            out[row["layer"], j] = row[metric]
    return out


def variant_table(records: list[dict[str, Any]], metric: str, variant: str) -> np.ndarray:
    """(layers, checkpoints) of the ``null`` or ``token_centred`` variant of a per-layer metric; NaN where
    absent."""
    L = max(r["n_layers"] for r in records)
    out = np.full((L, len(records)), np.nan)
    for j, r in enumerate(records):
        for row in r["layers"]:
            if variant in row:
                out[row["layer"], j] = row[variant][metric]
    return out


def _layer_ticks(ax: Any, L: int) -> None:
    """Integer layer numbers on the y axis (at most about 12 labelled)."""
    step = max(1, int(np.ceil(L / 12)))
    ax.set_yticks(range(0, L, step))
    ax.set_yticklabels([str(l) for l in range(0, L, step)], fontsize=7)
    ax.set_ylabel("layer", fontsize=8)


def _x(records: list[dict[str, Any]]) -> tuple[np.ndarray, bool]:
    steps = [r.get("step") for r in records]
    if all(s is not None for s in steps):
        return np.array(steps, dtype=float), True
    return np.arange(len(records), dtype=float), False


def _xticks(ax: Any, records: list[dict[str, Any]], axis_is_step: bool, heat: bool = False) -> None:
    n = len(records)
    idx = np.unique(np.linspace(0, n - 1, min(n, 12)).round().astype(int))
    labels = [records[i]["label"] for i in idx]
    if heat:
        ax.set_xticks(idx)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    elif not axis_is_step:
        ax.set_xticks(idx)
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)


def plot_all(out_dir: str | Path) -> list[Path]:
    """Write every figure into ``out_dir``; return the paths."""
    from leadingterms.plotting import pyplot, save_figure

    plt = pyplot()
    records = load_results(out_dir)
    x, is_step = _x(records)
    paths: list[Path] = []

    L = max(r["n_layers"] for r in records)
    rows = (("score", "score (8.3)"), ("minus_null", "score − null (8.5)"),
            ("token_centred", "token-centred, CKA (8.6)"))
    fig, axes = plt.subplots(len(rows), len(METRICS), squeeze=False, layout="constrained",
                             figsize=(3.3 * len(METRICS) + 1.0, 2.3 * len(rows) + 0.4 + 0.05 * L))
    gap = {m: table(records, m) - variant_table(records, m, "null") for m in METRICS}
    finite = np.concatenate([g[np.isfinite(g)] for g in gap.values()])
    gap_lim = max(float(np.abs(finite).max()) if finite.size else 0.0, 0.05)  # one scale for the row
    for i, (variant, row_title) in enumerate(rows):
        for ax, m in zip(axes[i], METRICS, strict=True):
            if variant == "score":
                data, cmap, lim = table(records, m), "viridis", ((-1.0 if m == "qk_mean" else 0.0), 1.0)
            elif variant == "minus_null":
                data, cmap, lim = gap[m], "RdBu_r", (-gap_lim, gap_lim)
            else:
                data, cmap, lim = variant_table(records, m, "token_centred"), "RdBu_r", (-1.0, 1.0)
            im = ax.imshow(data, aspect="auto", origin="lower", vmin=lim[0], vmax=lim[1], cmap=cmap,
                           interpolation="nearest")
            ax.set_title(f"{m}: {row_title}", fontsize=8)
            _layer_ticks(ax, L)
            if i == len(rows) - 1:
                _xticks(ax, records, is_step, heat=True)
            else:
                ax.set_xticks([])
            fig.colorbar(im, ax=ax, shrink=0.9, pad=0.02).ax.tick_params(labelsize=7)
    fig.suptitle("Gram similarity with the predicted features per layer (rows) and checkpoint (columns)",
                 fontsize=10)
    paths += save_figure(fig, out_dir, "similarity_heatmap", tight=True)

    fig, axes = plt.subplots(1, len(METRICS) + 1, figsize=(3.6 * (len(METRICS) + 1), 3.4), squeeze=False)
    cmap = plt.get_cmap("plasma")
    for ax, m in zip(axes[0][:-1], METRICS, strict=True):
        tab = table(records, m)
        for l in range(tab.shape[0]):
            ax.plot(x, tab[l], marker=".", color=cmap(l / max(tab.shape[0], 1)), label=f"layer {l}")
        for extra, style, name in (("null", "--", "null (tokens permuted)"),
                                   ("token_centred", ":", "token-centred (CKA)")):
            if not all(extra in row for r in records for row in r["layers"]):
                continue
            ext = variant_table(records, m, extra)
            for l in range(tab.shape[0]):
                ax.plot(x, ext[l], style, lw=0.9, color=cmap(l / max(tab.shape[0], 1)),
                        label=f"{name}" if l == tab.shape[0] - 1 else None)
        ax.set_title(m)
        if is_step:
            ax.set_xscale("symlog", linthresh=1)
            ax.set_xlabel("step")
        _xticks(ax, records, is_step)
    axes[0][0].legend(fontsize=6, ncol=2)
    ax = axes[0][-1]
    for key in MODEL_LEVEL:
        ax.plot(x, [r["model_level"][key] for r in records], marker=".", label=key)
    ax.set_title("model level vs B̄")
    if is_step:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlabel("step")
    _xticks(ax, records, is_step)
    ax.legend(fontsize=6)
    fig.suptitle("Similarity across checkpoints (solid: docs/theory.md (8.3); dashed: permuted null; "
                 "dotted: CKA)", y=1.03)
    paths += save_figure(fig, out_dir, "similarity_lines", tight=True)

    H = max(r["n_heads"] for r in records)
    L = max(r["n_layers"] for r in records)
    heads = np.full((L * H, len(records)), np.nan)
    for j, r in enumerate(records):
        for row in r["layers"]:
            for h, c in enumerate(row["qk_heads"]):
                heads[row["layer"] * H + h, j] = c
    fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * len(records) + 3), max(3.0, 0.12 * L * H + 1.5)))
    im = ax.imshow(heads, aspect="auto", origin="lower", vmin=-1, vmax=1, cmap="RdBu_r", interpolation="nearest")
    ax.set_yticks([l * H + (H - 1) / 2 for l in range(L)])
    ax.set_yticklabels([str(l) for l in range(L)], fontsize=7)
    for l in range(1, L):
        ax.axhline(l * H - 0.5, color="k", lw=0.6)
    ax.set_ylabel(f"layer ({H} heads each, head 0 at the bottom)")
    _xticks(ax, records, is_step, heat=True)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title("per-head qk similarity with Q̄")
    paths += save_figure(fig, out_dir, "similarity_heads", tight=True)
    return paths
