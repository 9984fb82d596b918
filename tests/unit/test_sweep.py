"""The sweep's grid, point names, shared settings and point states (the runs themselves: tests/integration)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from leadingterms.errors import LeadingTermsError
from leadingterms.sweep import SweepConfig, grid, point_state, train_config
from leadingterms.training.config import TrainConfig


def _cfg(tmp_path, **kw):
    base = dict(corpora=[str(tmp_path / "tiny")], lrs=[0.05, 0.2], batch_sizes=[8], layer_counts=[1, 3],
                steps=10, out=str(tmp_path / "sw"))
    return SweepConfig(**{**base, **kw})


def test_grid_order_names_and_dedup(tmp_path):
    points = grid(_cfg(tmp_path, lrs=[0.05, 0.2, 0.05], seeds=[1, 0]))
    assert [p.name for p in points] == [
        "tiny-lr0.05-bs8-L1-seed1", "tiny-lr0.05-bs8-L1-seed0", "tiny-lr0.05-bs8-L3-seed1", "tiny-lr0.05-bs8-L3-seed0",
        "tiny-lr0.2-bs8-L1-seed1", "tiny-lr0.2-bs8-L1-seed0", "tiny-lr0.2-bs8-L3-seed1", "tiny-lr0.2-bs8-L3-seed0"]
    assert len({p.name for p in grid(_cfg(tmp_path, lrs=[0.1, 0.1000001], layer_counts=[1]))}) == 2  # η exact
    with pytest.raises(LeadingTermsError, match="same folder name 'tiny'"):
        grid(_cfg(tmp_path, corpora=[str(tmp_path / "a" / "tiny"), str(tmp_path / "b" / "tiny")]))


def test_shared_settings_are_trains_own_options(tmp_path):
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    shared = [f for f in dataclasses.fields(SweepConfig) if f.name in train_fields]
    assert {f.name for f in shared} >= {"steps", "epochs", "track", "log_every", "optimizer", "init", "out", "force"}
    for f in shared:
        if f.name in ("out", "force", "progress"):  # the sweep's own folder, restart and bar
            continue
        assert dict(f.metadata) == dict(train_fields[f.name].metadata), f.name
    cfg = _cfg(tmp_path, track=("shadow",), log_every=3, optimizer="adam", grad_accum=2)
    p = grid(cfg)[-1]
    t = train_config(cfg, p, stats=None)
    assert (t.lr, t.layers, t.batch_size, t.seed, t.corpus) == (0.2, 3, 8, 0, str(tmp_path / "tiny"))
    assert (t.track, t.log_every, t.optimizer, t.grad_accum, t.steps, t.epochs) == (("shadow",), 3, "adam", 2, 10, None)
    assert t.out == str(tmp_path / "sw" / "runs" / p.name) and t.resume and not t.force and not t.progress
    t = train_config(_cfg(tmp_path, force=True), p, stats="B")
    assert t.force and not t.resume and t.stats == "B"


@pytest.mark.parametrize("bad, msg", [
    (dict(lrs=[]), "--lrs needs at least one value"),
    (dict(lrs=[0.1, -1.0]), "--lrs must be a finite number > 0"),
    (dict(layer_counts=[0]), "--layer-counts must be a positive integer"),
    (dict(seeds=[-1]), "--seeds must be an integer >= 0"),
    (dict(steps=None), "exactly one of --steps and --epochs"),
    (dict(workers=0), "--workers must be a positive integer"),
])
def test_config_checks(tmp_path, bad, msg):
    from leadingterms.config import check_config

    with pytest.raises(LeadingTermsError, match=msg):
        check_config(_cfg(tmp_path, **bad))


def test_point_state(tmp_path):
    run = tmp_path / "run"
    assert point_state(run, 10, None) == "new"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"config": {}, "steps_per_epoch": 4}))
    assert point_state(run, 10, None) == "partial"  # started, no summary: resumed
    (run / "summary.json").write_text(json.dumps({"diverged": None, "final": {"step": 10}}))
    assert point_state(run, 10, None) == "finished"
    assert point_state(run, 12, None) == "partial"  # more steps asked: continued
    assert point_state(run, None, 2) == "finished" and point_state(run, None, 3) == "partial"  # epochs × 4 steps
    (run / "summary.json").write_text(json.dumps({"diverged": {"step": 3}, "final": {"step": 2}}))
    assert point_state(run, 10, None) == "diverged"
