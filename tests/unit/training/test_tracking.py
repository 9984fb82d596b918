import json

import pytest
import torch

from leadingterms.training.tracking import (
    append_metrics,
    layer_spread,
    read_metrics,
    truncate_metrics,
    validity_horizon,
)


def test_layer_spread_matches_definition():
    g = torch.Generator().manual_seed(0)
    L = 3
    w = {}
    for l in range(L):
        w[f"layers.{l}.V"] = torch.randn(4, 4, generator=g, dtype=torch.float64)
        w[f"layers.{l}.W"] = torch.ones(4, 4, dtype=torch.float64) * (l + 1)
        w[f"layers.{l}.P"] = torch.zeros(5, dtype=torch.float64)
    out = layer_spread(w, L)
    # W: layers 1, 2, 3 times ones -> mean 2, deviations 1, 0, 1 -> spread 1/2
    assert out["W"] == pytest.approx(0.5, rel=1e-12)
    assert out["P"] is None  # zero mean
    stack = torch.stack([w[f"layers.{l}.V"] for l in range(L)])
    mean = stack.mean(0)
    expect = max(float((stack[l] - mean).norm() / mean.norm()) for l in range(L))
    assert out["V"] == pytest.approx(expect, rel=1e-12)
    assert layer_spread(w, 1) is None


def test_validity_horizon_first_crossing():
    rows = [
        {"step": 0, "closed_form": {}},
        {"step": 5, "closed_form": {"W_O": {"cos": 1.0, "rel": 0.01}}, "shadow": {"W_O": {"cos": 1, "rel": 0.001}}},
        {"step": 10, "closed_form": {"W_O": {"cos": 1.0, "rel": 0.07}, "layers.0.V": {"cos": 1, "rel": 0.3}}},
        {"step": 15, "closed_form": {"W_O": {"cos": 1.0, "rel": 0.04}, "layers.0.V": {"cos": None, "rel": None}}},
        {"step": 20, "closed_form": {"W_O": {"cos": 0.9, "rel": 0.25}}},
    ]
    h = validity_horizon(rows)
    assert h["closed_form"]["W_O"] == {"5%": 10, "20%": 20}
    assert h["closed_form"]["layers.0.V"] == {"5%": 10, "20%": 10}
    assert h["shadow"]["W_O"] == {"5%": None, "20%": None}


def test_truncate_metrics_keeps_bytes_and_drops_torn_line(tmp_path):
    for s in (0, 3, 6, 9):
        append_metrics(tmp_path, {"step": s, "loss": 1.0 / (s + 3)})
    original = (tmp_path / "metrics.jsonl").read_text()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 12, "loss": 0.1')  # killed mid-write
    rows = truncate_metrics(tmp_path, 6)
    assert [r["step"] for r in rows] == [0, 3, 6]
    assert (tmp_path / "metrics.jsonl").read_text() == "".join(original.splitlines(True)[:3])
    assert read_metrics(tmp_path, upto=3) == [json.loads(l) for l in original.splitlines()[:2]]
