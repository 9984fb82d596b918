"""Plots: each figure is written as PNG and SVG; the series behind the tracking figure are right."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from leadingterms import plots


def fake_metrics(layers: int = 3, steps: int = 12) -> list[dict]:
    """metrics.jsonl records in the training runner's format; rel grows like s*0.02*(1+l/10)."""
    out = []
    for s in range(0, steps + 1, 2):
        rec: dict = {"step": s, "epoch": s / steps, "loss": math.log(50) - 0.01 * s,
                     "val_loss": (math.log(50) - 0.009 * s) if s % 4 == 0 else None}
        for pred in ("closed_form", "shadow", "second_order"):
            block = {}
            if s > 0:
                names = ["W_O"] + [f"layers.{l}.{k}" for l in range(layers) for k in ("W", "V", "P")]
                if pred == "second_order":
                    names = ["W_O"] + [f"layers.{l}.V" for l in range(layers)]
                for name in names:
                    kind, layer = plots.parse_param(name)
                    rel = 0.02 * s * (1 + (layer or 0) / 10) * (0.1 if pred != "closed_form" else 1)
                    block[name] = {"cos": 1 - rel**2 / 2, "rel": rel}
            rec[pred] = block
        rec["layer_spread"] = {"V": 1e-3 * s, "W": 1e-3 * s, "P": 1e-3 * s}
        out.append(rec)
    return out


def _check_pair(paths, tmp_path, stem):
    assert [p.name for p in paths] == [f"{stem}.png", f"{stem}.svg"]
    png, svg = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and "</svg>" in text
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes left nothing behind


def test_parse_param():
    assert plots.parse_param("W_O") == ("W_O", None)
    assert plots.parse_param("layers.12.P") == ("P", 12)
    with pytest.raises(ValueError):
        plots.parse_param("layers.x.W")


def test_tracking_series_per_layer_values():
    m = fake_metrics(layers=3)
    series = plots.tracking_series(m, "closed_form", "rel")
    steps, vals = series["V"]
    assert steps.tolist() == [2, 4, 6, 8, 10, 12]  # step 0 logs nothing (zero weights)
    assert vals.shape == (6, 3)
    np.testing.assert_allclose(vals[1], [0.08 * (1 + l / 10) for l in range(3)])
    steps, vals = series["W_O"]
    assert vals.shape == (6, 1)
    so = plots.tracking_series(m, "second_order", "cos")
    assert set(so) == {"W_O", "V"}


@pytest.mark.slow
def test_tracking_and_loss_png_svg(tmp_path):
    m = fake_metrics()
    _check_pair(plots.plot_tracking(m, tmp_path), tmp_path, "tracking")
    # a run that logged only the closed form (and no validation loss) still draws
    m = [{k: v for k, v in r.items() if k not in ("shadow", "second_order", "val_loss")} for r in m]
    _check_pair(plots.plot_loss(m, tmp_path), tmp_path, "loss")
    assert not plots.tracking_series(m, "shadow", "rel")


def test_heatmaps_and_positional(tmp_path):
    g = torch.Generator().manual_seed(0)
    V, T = 60, 16
    vocab = [f"w{i}" for i in range(V)]
    A = torch.randn(V, V, generator=g, dtype=torch.float64)
    pairs = [("learned W_O", A, "B̄", A + 0.1 * torch.randn(V, V, generator=g, dtype=torch.float64)),
             ("learned V^(0)", A.T, "Φ̄ᵀB̄ᵀ", torch.zeros(V, V, dtype=torch.float64))]
    _check_pair(plots.plot_heatmaps(pairs, list(range(0, 60, 3)), vocab, tmp_path), tmp_path, "heatmaps")
    D = torch.randn(T, generator=g, dtype=torch.float64)
    _check_pair(plots.plot_positional({0: D, 1: 1.1 * D}, D, tmp_path), tmp_path, "positional")
