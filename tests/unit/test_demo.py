"""The demo's configuration checks and summary helpers (the demo itself runs once, in tests/e2e)."""

from __future__ import annotations

import pytest

from leadingterms.demo import DemoConfig, _horizon_line, run_demo
from leadingterms.errors import LeadingTermsError


def test_demo_refuses_bad_settings(tmp_path):
    with pytest.raises(LeadingTermsError, match="--steps must be a positive integer"):
        run_demo(DemoConfig(out=str(tmp_path), steps=0))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(LeadingTermsError, match="not a directory"):
        run_demo(DemoConfig(out=str(f)))
    assert not any(tmp_path.iterdir()) or [p.name for p in tmp_path.iterdir()] == ["file"]


def test_horizon_line_earliest_layer():
    summary = {"validity_horizon": {"closed_form": {
        "W_O": {"5%": 8, "20%": None},
        "layers.0.V": {"5%": 6, "20%": 12}, "layers.1.V": {"5%": 4, "20%": None},
        "layers.0.W": {"5%": None, "20%": None}}}}
    assert _horizon_line(summary, "closed_form") == "W_O 5%@8/20%:never, V 5%@4/20%@12, W 5%:never/20%:never"
    assert _horizon_line(summary, "shadow") == ""
