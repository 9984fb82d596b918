"""Run comparison: the power-law fit against a literal reference, fits per group, groups, figures from
fabricated records."""

from __future__ import annotations

import random

import pytest
from reference.horizons import naive_power_law

from leadingterms.comparison import fit_power_law, horizon_fits
from leadingterms.comparison.records import assign_groups


def test_fit_power_law_matches_the_normal_equations():
    rng = random.Random(1)
    for _ in range(50):
        n = rng.randint(2, 8)
        x = [rng.uniform(0.01, 2.0) for _ in range(n)]
        y = [rng.uniform(1.0, 500.0) for _ in range(n)]
        fit = fit_power_law(x, y)
        alpha, C = naive_power_law(x, y)
        assert fit["exponent"] == pytest.approx(alpha, rel=1e-10, abs=1e-12)
        assert fit["prefactor"] == pytest.approx(C, rel=1e-10)
        assert fit["n_points"] == n


def test_fit_power_law_exact_and_degenerate():
    fit = fit_power_law([0.05, 0.2, 0.8], [22.0 / 0.05, 22.0 / 0.2, 22.0 / 0.8])
    assert fit["exponent"] == pytest.approx(-1.0, abs=1e-12) and fit["prefactor"] == pytest.approx(22.0)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit_power_law([0.1, 0.2], [10.0, 4.0])["r2"] is None  # two points: any line fits
    for x, y in (([0.1], [10.0]), ([0.1, 0.1], [10.0, 12.0]), ([], [])):
        bad = fit_power_law(x, y)
        assert bad["exponent"] is None and "two or more learning rates" in bad["why"]


def _record(name, lr, B, crossings, headline="shadow", layers=3):
    by_kind = {headline: {"W_O": {"5%": None if crossings[0] is None else {"step": crossings[0],
                                                                             "s_eta": crossings[0] * lr},
                                  "20%": None if crossings[1] is None else {"step": crossings[1],
                                                                              "s_eta": crossings[1] * lr}}}}
    return {"name": name, "lr": lr, "seed": 0, "batch_size": B, "grad_accum": 1, "layers": layers, "optimizer": "sgd",
            "init": "zero", "dtype": "float32", "corpus": "/data/tiny", "corpus_hash": "h",
            "horizon": {"headline": headline, "thresholds": ["5%", "20%"], "by_weight_kind": by_kind,
                        "last_step": 150}}


def test_horizon_fits_per_group_and_held_runs_are_not_fitted():
    recs = [_record("a", 0.05, 64, (300, None)), _record("b", 0.2, 64, (75, 110)), _record("c", 0.8, 64, (19, 28)),
            _record("d", 0.2, 32, (50, 90)), _record("e", 0.8, 32, (12, 22))]
    assign_groups(recs)
    assert [r["group"] for r in recs] == ["tiny B=64 L=3"] * 3 + ["tiny B=32 L=3"] * 2
    fits = {(f["group"], f["threshold"]): f for f in horizon_fits(recs)}
    f = fits[("tiny B=64 L=3", "5%")]
    assert f["exponent"] == pytest.approx(naive_power_law([0.05, 0.2, 0.8], [300, 75, 19])[0])
    assert f["s_eta_exponent"] == pytest.approx(f["exponent"] + 1) and f["n_points"] == 3 and f["held"] == 0
    f = fits[("tiny B=64 L=3", "20%")]
    assert f["n_points"] == 2 and f["n_runs"] == 3 and f["held"] == 1 and f["lrs"] == [0.2, 0.8]
    assert f["exponent"] == pytest.approx(naive_power_law([0.2, 0.8], [110, 28])[0]) and f["headline"]
    assert fits[("tiny B=32 L=3", "20%")]["n_points"] == 2
    # a diverged run's crossing (the blow-up) is not fitted
    recs.append({**_record("f", 1e6, 64, (5, 5)), "diverged": {"step": 5}})
    assign_groups(recs)
    f = {(f["group"], f["threshold"]): f for f in horizon_fits(recs)}[("tiny B=64 L=3", "5%")]
    assert f["n_runs"] == 4 and f["diverged"] == 1 and f["n_points"] == 3 and f["lrs"] == [0.05, 0.2, 0.8]


@pytest.mark.slow
def test_comparison_figures_from_fabricated_records(tmp_path):
    from leadingterms import plots as run_plots
    from leadingterms.comparison import plots

    recs = [_record("a", 0.05, 64, (300, None)), _record("b", 0.2, 64, (75, 110)), _record("c", 0.8, 64, (19, 28))]
    for r in recs:
        r["curves"] = {"step": [0, 50, 100, 150], "loss": [6.2, 5.0, 4.5, None], "val_loss": [None] * 4,
                       "rel": {"shadow": {"W_O": [None, 0.01 * r["lr"], 0.1 * r["lr"], 0.4 * r["lr"]]}}}
        r["readouts"] = {"k": 5, "planted": [{"kind": "bigram", "readout": f"W^({l})", "layer": l, "hits": l + 1,
                                              "total": 4} for l in range(3)],
                         "overlap": [{"learned": "W_O", "predicted": "B̄", "layer": None, "overlap": 0.5}]}
    assign_groups(recs)
    fits = horizon_fits(recs)
    for paths in (plots.plot_horizon_scaling(recs, fits, tmp_path), plots.plot_runs_tracking(recs, tmp_path),
                  plots.plot_runs_loss(recs, tmp_path),
                  run_plots.plot_layer_readouts([(r["name"], r["readouts"], "k") for r in recs], tmp_path)):
        assert paths is not None
        assert all(p.stat().st_size > 1000 for p in paths) and {p.suffix for p in paths} == {".png", ".svg"}
    assert run_plots.layer_readout_panels([recs[0]["readouts"]]) == [("planted bigram pairs: W^(l)", "planted", "W^(l)")]
    assert run_plots.plot_layer_readouts([("x", {"k": 5, "planted": [], "overlap": []}, "k")], tmp_path / "no") is None
