"""The HTML page of ``leadingterms compare`` (through :mod:`leadingterms.report.html`, the one HTML builder)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from leadingterms.report.html import esc, fmt, image, page, table
from leadingterms.theory import param_names
from leadingterms.training.tracking import PREDICTION_NAMES, format_crossing


def section_runs(records: Sequence[Mapping[str, Any]]) -> str:
    header = ("run", "group", "η", "batch", "layers", "seed", "N", "V", "T", "steps", "headline", "final loss",
              "status")
    rows = []
    for r in records:
        h = r["horizon"]
        status = "diverged" if r["diverged"] else ("finished" if r["finished"] else "unfinished")
        rows.append((r["name"], r["group"], r["lr"], f"{r['batch_size']}×{r['grad_accum']}", r["layers"],
                     r["seed"], r["N"], r["V"], r["T"], r["steps"], PREDICTION_NAMES.get(h["headline"] or "", "–"),
                     r["final_loss"], status))
    return ("<p>Runs that differ only in the learning rate and the seed form a group; horizons are fitted "
            "against η within a group.</p>" + table(header, rows))


def _fit_rows(fits: Sequence[Mapping[str, Any]], headline: bool) -> list[tuple[Any, ...]]:
    return [(f["group"], PREDICTION_NAMES[f["prediction"]], f["weight"], f["threshold"], f["exponent"],
             f["s_eta_exponent"], f["prefactor"], f["r2"], f"{f['n_points']} of {f['n_runs']}",
             ", ".join(f"{x:g}" for x in f["lrs"]) or "–")
            for f in fits if f["headline"] == headline]


def section_horizon(records: Sequence[Mapping[str, Any]], fits: Sequence[Mapping[str, Any]], fig_dir: Path) -> str:
    whys = sorted({f"{PREDICTION_NAMES[r['horizon']['headline']]}: {r['horizon']['why']}" for r in records
                   if r["horizon"]["headline"]})
    out = ("<p>The horizon of a weight is the first logged step after which its relative error stays above the "
           "threshold until the end of the run (docs/theory.md (6.5)); per weight kind the earliest layer. The "
           "headline prediction is the one whose error measures the breakdown of the expansion: "
           + "; ".join(f"<b>{esc(w.split(':')[0])}</b> —{esc(w.split(':', 1)[1])}" for w in whys)
           + ". The expansion is in s·η (3.9), so at fixed corpus and batch size the step horizon should "
           "scale like 1/η, i.e. exponent α = −1 in s ∝ η<sup>α</sup>, and s·η stay constant (6.6).</p>")
    out += image(fig_dir / "horizon_scaling.png", "headline horizon against the learning rate, steps (top) and "
                 "s·η (bottom); lines: power laws fitted over the runs that crossed")
    header = ("group", "prediction", "weight", "threshold", "α (steps ∝ η^α)", "α + 1 (s·η ∝ η^(α+1))",
              "prefactor C", "R²", "runs fitted", "η fitted")
    out += "<h3>Fitted power laws, headline prediction</h3>" + table(header, _fit_rows(fits, True))
    other = _fit_rows(fits, False)
    if other:
        out += ("<h3>Other predictions</h3><p class=\"note\">Under SGD the closed form's error measures batch "
                "noise (docs/theory.md §6.3): its horizon is not expected to follow 1/η.</p>"
                + table(header, other))
    kinds = list(dict.fromkeys(k for r in records for k in r["horizon"]["by_weight_kind"].get(
        r["horizon"]["headline"] or "", {})))
    thresholds = records[0]["horizon"]["thresholds"] if records else []
    rows = []
    for r in records:
        h = r["horizon"]
        by = h["by_weight_kind"].get(h["headline"] or "", {})
        rows.append((r["name"], r["lr"], *(format_crossing((by.get(k) or {}).get(t)) if k in by else "n/a"
                                           for k in kinds for t in thresholds)))
    out += ("<h3>Headline horizons per run</h3><p class=\"note\">s = step, sη = step × learning rate; “held”: "
            "within the threshold at the run's last logged step.</p>"
            + table(("run", "η", *(f"{k} {t}" for k in kinds for t in thresholds)), rows))
    return out


def section_tracking(fig_dir: Path) -> str:
    return (image(fig_dir / "tracking_overlay.png", "relative error of each run's headline prediction against "
                  "the step (top) and against s·η (bottom); dotted: 5% and 20%")
            + image(fig_dir / "loss_overlay.png", "training loss against the step and against s·η"))


def section_intervention(records: Sequence[Mapping[str, Any]]) -> str:
    with_iv = [r for r in records if r["intervention"]]
    if not with_iv:
        return ("<p>No run has an intervention.json: run <code>leadingterms intervene --run RUN</code> on the "
                "runs and compare again.</p>")
    L = max(r["layers"] for r in with_iv)
    params = [p for p in param_names(L) if any(p in r["intervention"]["delta_removed"] for r in with_iv)]
    rows: list[list[Any]] = [["checkpoint step", *(r["intervention"]["step"] for r in with_iv)],
                             ["loss as trained", *(r["intervention"]["original_loss"] for r in with_iv)]]
    rows += [[p, *(r["intervention"]["delta_removed"].get(p) for r in with_iv)] for p in params]
    return ("<p>Change of the dataset loss when the component of one weight along its predicted direction is "
            "removed (docs/theory.md (7.1)), one column per run. The orders η, η², η⁴ predict W_O ≫ V ≫ W, P.</p>"
            + table(("", *(r["name"] for r in with_iv)), rows))


def section_readouts(records: Sequence[Mapping[str, Any]], fig_dir: Path) -> str:
    with_rd = [r for r in records if r["readouts"]]
    if not with_rd:
        return "<p>No run has a checkpoint after step 0.</p>"
    out = ("<p>Latest checkpoint of each run, every layer (docs/theory.md §7.3). Planted pairs are the ground "
           "truth of the synthetic corpus; overlap@k is the mean over the most frequent rows of |top-k(learned) ∩ "
           "top-k(predicted)|/k.</p>")
    if (fig_dir / "layer_readouts.png").is_file():
        out += image(fig_dir / "layer_readouts.png", "per-layer readouts of the learned weights, one line per run")
    planted_keys = list(dict.fromkeys((p["kind"], p["readout"]) for r in with_rd
                                      for p in r["readouts"]["planted"]))
    if planted_keys:
        rows = []
        for kind, readout in planted_keys:
            cells = []
            for r in with_rd:
                p = next((p for p in r["readouts"]["planted"] if (p["kind"], p["readout"]) == (kind, readout)),
                         None)
                cells.append("–" if p is None else f"{p['hits']}/{p['total']}")
            rows.append((kind, readout, *cells))
        out += ("<h3>Planted pairs found in the top-k</h3>"
                + table(("kind", "readout", *(f"{r['name']} (step {r['readouts']['step']})" for r in with_rd)),
                        rows))
    else:
        out += "<p class=\"note\">No run's corpus has planted associations (only the synthetic stories do).</p>"
    keys = list(dict.fromkeys((o["learned"], o["predicted"]) for r in with_rd for o in r["readouts"]["overlap"]))
    rows = []
    for learned, predicted in keys:
        vals = [next((o["overlap"] for o in r["readouts"]["overlap"] if (o["learned"], o["predicted"]) ==
                      (learned, predicted)), None) for r in with_rd]
        rows.append((learned, predicted, *vals))
    k = with_rd[0]["readouts"]["k"]
    n = with_rd[0]["readouts"]["n_frequent"]
    out += (f"<h3>overlap@{esc(k)} over the {esc(n)} most frequent tokens</h3>"
            + table(("learned", "predicted", *(r["name"] for r in with_rd)), rows))
    return out


def build_page(records: Sequence[Mapping[str, Any]], fits: Sequence[Mapping[str, Any]], fig_dir: Path) -> str:
    """The whole page."""
    sections = [
        ("runs", "Runs", section_runs(records)),
        ("horizon", "Validity horizon against the learning rate", section_horizon(records, fits, fig_dir)),
        ("tracking", "Tracking curves and losses", section_tracking(fig_dir)),
        ("intervention", "Causal intervention, side by side", section_intervention(records)),
        ("readouts", "Readouts per layer", section_readouts(records, fig_dir)),
    ]
    lrs = sorted({r["lr"] for r in records})
    subtitle = (f"{len(records)} runs, learning rates {', '.join(fmt(x) for x in lrs)}; leading terms of Im et "
                "al. (ICLR 2026), docs/theory.md §6.3")
    return page("leadingterms compare", subtitle, sections)
