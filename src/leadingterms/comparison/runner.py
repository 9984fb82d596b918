"""``leadingterms compare RUN... --out DIR``: one self-contained page comparing training runs.

Writes OUT/compare.json (the run records and the power-law fits of :mod:`.records`), OUT/figures/
(PNG + SVG) and OUT/report.html (figures inlined).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadingterms.config import check_config, option
from leadingterms.validate import out_folder, positive_int, refuse_foreign

COMPARE_FILE = "compare.json"
REPORT_FILE = "report.html"
FIGURES_DIR = "figures"


def _at_least_two(value: Any, name: str) -> int:
    from leadingterms.report.build import at_least_two

    return at_least_two(value, name)


@dataclass(kw_only=True)
class CompareRunsConfig:
    """``leadingterms compare``: training runs (or whole sweeps) side by side."""

    runs: list[str] = option(help="run folders (`leadingterms train`) or sweep folders (`leadingterms sweep`: "
                             "every run in it)", metavar="RUN", positional=True, nargs="+")
    out: str = option(help="output folder (report.html, compare.json, figures/)", metavar="DIR")
    k: int = option(5, help="top-k of the readouts", check=positive_int)
    heatmap_tokens: int = option(50, help="overlap@k over the N most frequent tokens", metavar="N",
                                 check=_at_least_two)
    force: bool = option(False, help="write into DIR even when it holds files other than a comparison's")


def claim_folder(out: Path, force: bool) -> None:
    """The overwrite policy of the output folder: new, empty, or a comparison's (its files are rewritten);
    a folder holding anything else (a run folder: its report.html and figures/ would be replaced) only with
    ``force``."""
    if not force:
        refuse_foreign(out, "a comparison", lambda p: p.name in (COMPARE_FILE, REPORT_FILE, FIGURES_DIR))


@dataclass
class CompareRunsResult:
    """The page, the JSON and what they hold."""

    path: Path  # OUT/report.html
    json_path: Path
    records: list[dict[str, Any]]
    fits: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def compare_runs(cfg: CompareRunsConfig) -> CompareRunsResult:
    """Read every run, fit the horizons against η, draw the figures and write the page and the JSON."""
    from leadingterms import plots as run_plots
    from leadingterms.comparison import plots
    from leadingterms.comparison.page import build_page
    from leadingterms.comparison.records import assign_groups, horizon_fits, run_folders, run_labels, run_record
    from leadingterms.persist import atomic_path, write_json
    from leadingterms.training import load_run

    check_config(cfg)
    out = out_folder(cfg.out)
    claim_folder(out, cfg.force)  # again once the lock is held
    folders = run_folders(cfg.runs)
    runs = [load_run(f) for f in folders]  # one-line errors before anything is written
    notes = [f"{r.path} is unfinished (no summary.json): its logged steps so far are compared"
             for r in runs if r.summary is None]
    notes += [f"{r.path} diverged (step {(r.summary or {})['diverged'].get('step')}): shown, left out of the fits"
              for r in runs if isinstance((r.summary or {}).get("diverged"), dict)]
    records = [run_record(r, name, k=cfg.k, n_frequent=cfg.heatmap_tokens)
               for r, name in zip(runs, run_labels(folders), strict=True)]
    assign_groups(records)
    records.sort(key=lambda r: (r["group"], r["lr"], r["seed"], r["name"]))
    fits = horizon_fits(records)

    from leadingterms.locks import output_lock

    with output_lock(out, folder=True, what="comparison", claim=lambda: claim_folder(out, cfg.force)):
        fig_dir = out / FIGURES_DIR
        plots.plot_horizon_scaling(records, fits, fig_dir)
        plots.plot_runs_tracking(records, fig_dir)
        plots.plot_runs_loss(records, fig_dir)
        colours = plots.lr_colours(records)
        readouts = [(r["name"], r["readouts"], colours[r["lr"]]) for r in records if r["readouts"]]
        run_plots.plot_layer_readouts(readouts, fig_dir)
        json_path = out / COMPARE_FILE
        write_json(json_path, {"kind": "leadingterms.compare", "runs": records, "fits": fits,
                               "definitions": {
                                   "horizon": records[0]["horizon"]["definition"] if records else None,
                                   "fit": "least squares of log(horizon step) = log(prefactor) + exponent·log(lr) "
                                          "over the runs of a group whose error crossed the threshold for good; "
                                          "s_eta_exponent = exponent + 1; theory (docs/theory.md (6.6)): -1 and 0",
                                   "delta_removed": "loss with the weight's predicted direction projected out "
                                                    "minus the loss as trained (docs/theory.md (7.1))"}})
        html_path = out / REPORT_FILE
        with atomic_path(html_path) as tmp:
            tmp.write_text(build_page(records, fits, fig_dir), encoding="utf-8")
            tmp.chmod(0o644)
    return CompareRunsResult(html_path, json_path, records, fits, notes)


def summary_lines(res: CompareRunsResult) -> list[str]:
    """Per group and threshold, the fitted exponent α of the headline horizon s ∝ η^α of every weight kind
    (theory: −1) and how many runs it was fitted on; then where the page is."""
    from leadingterms.training.tracking import PREDICTION_NAMES

    lines = []
    by: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for f in res.fits:
        if f["headline"]:
            by.setdefault((f["group"], f["prediction"], f["threshold"]), []).append(f)
    lrs: dict[str, set[float]] = {}
    for r in res.records:
        lrs.setdefault(r["group"], set()).add(r["lr"])
    for group, values in lrs.items():
        if len(values) < 2:
            lines.append(f"{group}: one learning rate, no horizon to fit")
    for (group, kind, t), fits in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][2] != "20%")):
        if len(lrs[group]) < 2:
            continue
        parts = [f"{f['weight']} " + (f"{f['exponent']:+.2f}" if f["exponent"] is not None else "no fit")
                 + f" ({f['n_points']}/{f['n_runs']} runs)" for f in fits]
        lines.append(f"{group}: {PREDICTION_NAMES[kind]} horizon {t}, exponent α of s ∝ η^α (theory −1): "
                     + ", ".join(parts))
    lines.append(f"wrote {res.path} and {res.json_path} ({len(res.records)} runs)")
    return lines
