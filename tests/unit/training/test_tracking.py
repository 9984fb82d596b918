import json
import random

import pytest
import torch
from reference.horizons import naive_sustained_horizon

from leadingterms.training.tracking import (
    append_metrics,
    format_horizons,
    horizon_lines,
    horizon_summary,
    layer_spread,
    read_metrics,
    sustained_crossing,
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


def test_layer_spread_block_by_block_equals_the_definition(monkeypatch):
    monkeypatch.setattr("leadingterms.metrics.BLOCK_ELEMENTS", 7 * 30)  # 7 rows per block: 5 blocks of 30 rows
    g = torch.Generator().manual_seed(1)
    L = 4
    w = {f"layers.{l}.{k}": torch.randn(30, 30, generator=g) for l in range(L) for k in ("V", "W")}
    w.update({f"layers.{l}.P": torch.randn(9, generator=g) + l for l in range(L)})
    out = layer_spread(w, L)
    for kind in ("V", "W", "P"):
        stack = torch.stack([w[f"layers.{l}.{kind}"].double() for l in range(L)])
        mean = stack.mean(0)
        expect = max(float((stack[l] - mean).norm() / mean.norm()) for l in range(L))
        assert out[kind] == pytest.approx(expect, rel=1e-12), kind


def test_validity_horizon_is_the_sustained_crossing():
    rows = [
        {"step": 0, "closed_form": {}},
        {"step": 5, "closed_form": {"W_O": {"cos": 1.0, "rel": 0.01}}, "shadow": {"W_O": {"cos": 1, "rel": 0.001}}},
        {"step": 10, "closed_form": {"W_O": {"cos": 1.0, "rel": 0.07}, "layers.0.V": {"cos": 1, "rel": 0.3}}},
        {"step": 15, "closed_form": {"W_O": {"cos": 1.0, "rel": 0.04}, "layers.0.V": {"cos": None, "rel": None}}},
        {"step": 20, "closed_form": {"W_O": {"cos": 0.9, "rel": 0.25}}},
    ]
    h = validity_horizon(rows)
    # W_O: the excursion above 5% at step 10 comes back below at 15: the sustained crossing is 20
    assert h["closed_form"]["W_O"] == {"5%": 20, "20%": 20}
    # V: above from its first logged step on (null = non-finite counts as above)
    assert h["closed_form"]["layers.0.V"] == {"5%": 10, "20%": 10}
    assert h["shadow"]["W_O"] == {"5%": None, "20%": None}
    # an error that falls back below the threshold at the end never crossed for good (the lr 0.05 case)
    falls = [{"step": s, "closed_form": {"W_O": {"rel": r}}} for s, r in ((5, 0.10), (50, 0.06), (150, 0.018))]
    assert validity_horizon(falls)["closed_form"]["W_O"] == {"5%": None, "20%": None}


def test_sustained_crossing_matches_the_definition_on_random_series():
    rng = random.Random(0)
    for _ in range(500):
        n = rng.randint(0, 12)
        steps = sorted(rng.sample(range(100), n))
        rels = [None if rng.random() < 0.05 else rng.choice([0.01, 0.05, 0.1, 0.2, 0.3]) * rng.uniform(0.5, 1.5)
                for _ in range(n)]
        for t in (0.05, 0.2):
            assert sustained_crossing(list(zip(steps, rels, strict=True)), t) == naive_sustained_horizon(steps, rels, t)


def test_horizon_summary_headline_and_s_eta():
    rows = [{"step": s, "closed_form": {"W_O": {"rel": 0.1}, "layers.0.V": {"rel": 0.3}, "layers.1.V": {"rel": 0.01}},
             "shadow": {"W_O": {"rel": 0.01 * s}, "layers.0.V": {"rel": 0.02 * s}, "layers.1.V": {"rel": 0.001}}}
             for s in (2, 4, 6, 8, 10, 12)]
    sgd = horizon_summary(rows, lr=0.5, N=100, batch_size=10, grad_accum=2, tracked=("closed_form", "shadow"))
    assert sgd["headline"] == "shadow" and not sgd["full_batch"] and "batch noise" in sgd["why"]
    assert "20 of N = 100" in sgd["why"] and sgd["last_step"] == 12
    assert sgd["by_prediction"]["shadow"]["W_O"] == {"5%": {"step": 6, "s_eta": 3.0}, "20%": None}
    assert sgd["by_prediction"]["shadow"]["layers.0.V"]["20%"] == {"step": 12, "s_eta": 6.0}
    # earliest over the layers of each weight kind; a layer that never crossed does not hide one that did
    assert sgd["by_weight_kind"]["shadow"]["V"] == {"5%": {"step": 4, "s_eta": 2.0}, "20%": {"step": 12, "s_eta": 6.0}}
    assert list(sgd["by_weight_kind"]["shadow"]) == ["W_O", "V"]
    gd = horizon_summary(rows, lr=0.5, N=20, batch_size=10, grad_accum=2, tracked=("closed_form", "shadow"))
    assert gd["headline"] == "closed_form" and gd["full_batch"] and gd["regime"] == "full-batch GD"
    only = horizon_summary(rows, lr=0.5, N=100, batch_size=10, grad_accum=1, tracked=("closed_form",))
    assert only["headline"] == "closed_form" and "shadow was not tracked" in only["why"]
    assert horizon_summary(rows, lr=0.5, N=100, batch_size=10, grad_accum=1, tracked=())["headline"] is None
    assert format_horizons({"W_O": {"5%": None, "20%": None}, "V": {"5%": {"step": 3, "s_eta": 0.6}, "20%": None}}) \
        == "W_O held; V s=3/held (sη=0.6/–)"
    lines = horizon_lines(sgd)
    assert "headline shadow (§5), minibatch SGD: W_O s=6/held (sη=3/–); V s=4/12 (sη=2/6)" in lines[0]
    assert lines[1].startswith("  why shadow (§5): minibatch SGD (20 of N = 100")
    assert lines[2] == "  closed form (§3): W_O s=2/held (sη=1/–); V s=2/2 (sη=1/1)"


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


def test_append_metrics_refuses_a_file_changed_behind_the_run(tmp_path):
    from leadingterms.errors import LeadingTermsError

    size = append_metrics(tmp_path, {"step": 0, "loss": 1.0}, expect_size=None)
    size = append_metrics(tmp_path, {"step": 1, "loss": 0.9}, expect_size=size)
    assert size == (tmp_path / "metrics.jsonl").stat().st_size
    (tmp_path / "metrics.jsonl").unlink()
    with pytest.raises(LeadingTermsError, match="deleted or changed"):
        append_metrics(tmp_path, {"step": 2, "loss": 0.8}, expect_size=size)
    assert not (tmp_path / "metrics.jsonl").exists()  # not silently recreated


def test_append_metrics_on_a_full_disk_leaves_no_torn_row(tmp_path, monkeypatch):
    import errno
    import os

    from leadingterms.errors import LeadingTermsError

    size = append_metrics(tmp_path, {"step": 0, "loss": 1.0})
    before = (tmp_path / "metrics.jsonl").read_bytes()
    real = os.write

    def short_write(fd, data):
        real(fd, data[:7])
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(os, "write", short_write)
    with pytest.raises(LeadingTermsError, match="disk is full"):
        append_metrics(tmp_path, {"step": 1, "loss": 0.5}, expect_size=size)
    monkeypatch.undo()
    assert (tmp_path / "metrics.jsonl").read_bytes() == before


@pytest.mark.parametrize(("lines", "match"), [
    (['{"step": 0}', '{"step": "one"}', '{"step": 2}'], "'step'"),
    (['{"step": 0}', "{torn", '{"step": 2}'], "line 2 is not JSON"),
    (['{"step": 0}', '{"step": 2}', '{"step": 1}'], "after step 2"),
    (['{"step": 0, "closed_form": {"W_O": {"cos": "x", "rel": 1}}}'], "closed_form"),
])
def test_read_metrics_schema(tmp_path, lines, match):
    from leadingterms.errors import LeadingTermsError

    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(LeadingTermsError, match=match):
        read_metrics(tmp_path)


def test_metrics_completeness():
    from leadingterms.errors import LeadingTermsError
    from leadingterms.training.tracking import check_metrics_complete

    rows = [{"step": s} for s in (0, 4, 8, 10)]  # 10: an earlier run's last step, kept by a resume
    check_metrics_complete(rows, log_every=4, upto=10, where="m")
    with pytest.raises(LeadingTermsError, match="logged steps 12"):
        check_metrics_complete(rows, log_every=4, upto=12, where="m")
    with pytest.raises(LeadingTermsError, match="logged steps 4"):
        check_metrics_complete([rows[0], *rows[2:]], log_every=4, upto=8, where="m")
