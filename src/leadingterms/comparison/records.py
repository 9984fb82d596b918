"""What ``leadingterms compare`` reads from each run, and the power-law fit of horizon against η.

A run record (one per run, JSON-safe; OUT/compare.json ``runs``):

- ``name``, ``path``, the settings (``lr``, ``batch_size``, ``grad_accum``, ``layers``, ``seed``, ``optimizer``,
  ``init``), the corpus (``corpus``, ``corpus_hash``, ``N``, ``V``, ``T``), ``group`` (runs that differ only in
  η and seed share a group: their horizons are fitted together), ``steps``, ``finished``, ``diverged``;
- ``horizon``: :func:`leadingterms.training.tracking.run_horizon` (every prediction, steps and s·η, the
  headline and why);
- ``curves``: per logged step the loss and, per prediction kind and weight kind, the relative error (mean
  over layers; null where not logged);
- ``intervention``: the loss change when each weight's predicted direction is removed (RUN/intervention.json),
  or null;
- ``readouts``: planted-pair recovery and overlap@k of the latest checkpoint, for every layer
  (:mod:`leadingterms.analyses`), or null when the run has no checkpoint after step 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leadingterms.errors import LeadingTermsError
from leadingterms.theory import parse_param
from leadingterms.training.config import TRACK_KINDS
from leadingterms.training.runs import Run

#: settings that make two runs comparable in a horizon-vs-η fit (everything but η and the seed)
GROUP_KEYS = ("corpus_hash", "batch_size", "grad_accum", "layers", "optimizer", "init", "dtype")


def run_folders(paths: Sequence[str]) -> list[Path]:
    """Run folders from the arguments: a run folder (RUN/config.json) as is, a sweep folder (OUT/sweep.json)
    as its OUT/runs/* runs (sorted); anything else is refused. Duplicates are dropped."""
    from leadingterms.sweep import RUNS_DIR, SWEEP_FILE
    from leadingterms.training.rundir import CONFIG_FILE

    out: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if (p / CONFIG_FILE).is_file():
            found = [p]
        elif (p / SWEEP_FILE).is_file():
            found = sorted(d for d in (p / RUNS_DIR).glob("*") if (d / CONFIG_FILE).is_file())
            if not found:
                raise LeadingTermsError(f"sweep {p} has no runs yet (run `leadingterms sweep --out {p}` first)")
        elif p.is_dir():
            raise LeadingTermsError(f"{p} is neither a run folder (config.json) nor a sweep folder (sweep.json)")
        else:
            raise LeadingTermsError(f"run directory not found: {p}")
        out += [f for f in found if f.resolve() not in {o.resolve() for o in out}]
    return out


def run_labels(folders: Sequence[Path]) -> list[str]:
    """Unique short names: the folder name, or parent/name where two runs share a name."""
    names = [f.name for f in folders]
    return [f"{f.parent.name}/{f.name}" if names.count(f.name) > 1 else f.name for f in folders]


def curves(metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{"step": [...], "loss": [...], "val_loss": [...],
    "rel": {prediction kind: {weight kind: [mean over layers, or None where not logged]}}}."""
    steps = [int(r["step"]) for r in metrics]
    rel: dict[str, dict[str, list[float | None]]] = {}
    for i, row in enumerate(metrics):
        for kind in TRACK_KINDS:
            per: dict[str, list[float]] = {}
            for name, cmp in (row.get(kind) or {}).items():
                v = cmp.get("rel") if isinstance(cmp, Mapping) else None
                if v is not None and math.isfinite(v):
                    per.setdefault(parse_param(name)[0], []).append(float(v))
            for wk, vals in per.items():
                series = rel.setdefault(kind, {}).setdefault(wk, [None] * len(metrics))
                series[i] = float(np.mean(vals))
    return {"step": steps, "loss": [r.get("loss") for r in metrics],
            "val_loss": [r.get("val_loss") for r in metrics], "rel": rel}


def intervention_record(run: Run) -> dict[str, Any] | None:
    """RUN/intervention.json -> {"step", "original_loss", "delta_removed": {param: loss_removed - original}}."""
    from leadingterms.intervene import read_intervention

    res = read_intervention(run)
    if res is None:
        return None
    o = float(res["original_loss"])
    return {"step": res.get("step"), "original_loss": o,
            "delta_removed": {r["param"]: float(r["loss_removed"]) - o for r in res["rows"]}}


def readouts_record(run: Run, *, k: int, n_frequent: int) -> dict[str, Any] | None:
    """Planted recovery and overlap@k of the latest checkpoint, every layer (None without a checkpoint > 0)."""
    from leadingterms import analyses

    steps = [s for s in run.checkpoints if s > 0]
    if not steps:
        return None
    step = max(steps)
    weights = run.load_checkpoint(step).weights()
    basis = run.basis()
    store = run.store(missing_ok=True)  # moved or deleted: no planted pairs to look for
    planted = list(store.meta.get("planted") or []) if store is not None else []
    vocab = basis.vocab or (store.vocab if store is not None else None)
    comps = analyses.comparisons(weights, basis, run.config.layers)
    k = min(k, int(basis.V))
    found = analyses.planted_recovery(basis, vocab, planted, weights=weights, k=k) if planted and vocab else []
    return {"step": step, "k": k, "n_frequent": min(n_frequent, int(basis.V)), "planted": found,
            "overlap": analyses.overlap_summary(comps, analyses.frequent_ids(basis, n_frequent), k)}


def run_record(run: Run, name: str, *, k: int, n_frequent: int) -> dict[str, Any]:
    """The record of one run (see the module docstring)."""
    from leadingterms.training.tracking import run_horizon

    cfg, info, summary = run.config, run.info, run.summary or {}
    rec: dict[str, Any] = {
        "name": name, "path": str(run.path), "lr": float(cfg.lr), "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum, "layers": cfg.layers, "seed": cfg.seed, "optimizer": cfg.optimizer,
        "init": cfg.init, "dtype": cfg.dtype, "corpus": str(info.get("corpus", cfg.corpus)),
        "corpus_hash": info.get("corpus_hash"), "N": info.get("N"), "V": info.get("V"), "T": info.get("T"),
        "steps": info.get("total_steps"), "finished": run.summary is not None,
        "diverged": summary.get("diverged"),
        "final_loss": run.metrics[-1].get("loss") if run.metrics else None,
        "horizon": run_horizon(run),
        "curves": curves(run.metrics),
        "intervention": intervention_record(run),
        "readouts": readouts_record(run, k=k, n_frequent=n_frequent),
    }
    return rec


def group_label(rec: Mapping[str, Any]) -> str:
    """"<corpus> B=64 L=3" (+ ×K, optimizer, init, dtype where not the defaults): what a fit group shares."""
    parts = [Path(str(rec["corpus"])).name, f"B={rec['batch_size']}" + (f"×{rec['grad_accum']}"
                                                                       if rec["grad_accum"] > 1 else ""),
             f"L={rec['layers']}"]
    defaults = (("optimizer", "sgd"), ("init", "zero"), ("dtype", "float32"))
    parts += [str(rec[k]) for k, d in defaults if rec[k] != d]
    return " ".join(parts)


def assign_groups(records: Sequence[dict[str, Any]]) -> None:
    """Set ``group`` of every record: runs equal in :data:`GROUP_KEYS` share one (labelled by
    :func:`group_label`, made unique where two groups would read the same)."""
    keys: dict[tuple[Any, ...], str] = {}
    for rec in records:
        key = tuple(rec[k] for k in GROUP_KEYS)
        if key not in keys:
            label = group_label(rec)
            n = sum(1 for v in keys.values() if v == label or v.startswith(label + " #"))
            keys[key] = label if n == 0 else f"{label} #{n + 1}"
        rec["group"] = keys[key]


# ----------------------------------------------------------------------------- power law


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Least squares of log y = log C + α log x -> {"exponent": α, "prefactor": C, "n_points", "r2"};
    exponent None (with ``why``) when fewer than two distinct x; r2 (of the log-log fit) None below three
    points, where any line fits."""
    lx, ly = np.log(np.asarray(x, dtype=np.float64)), np.log(np.asarray(y, dtype=np.float64))
    n = int(lx.size)
    if n < 2 or np.unique(lx).size < 2:
        return {"exponent": None, "prefactor": None, "n_points": n, "r2": None,
                "why": "needs crossings at two or more learning rates"}
    A = np.stack([np.ones_like(lx), lx], axis=1)
    (a, alpha), *_ = np.linalg.lstsq(A, ly, rcond=None)
    resid = ly - (a + alpha * lx)
    ss = float(((ly - ly.mean()) ** 2).sum())
    r2 = (1.0 - float((resid ** 2).sum()) / ss if ss > 0 else 1.0) if n >= 3 else None
    return {"exponent": float(alpha), "prefactor": float(math.exp(a)), "n_points": n, "r2": r2}


def horizon_fits(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per group, prediction kind, weight kind and threshold: the power law s_horizon ≈ C·η^α fitted over the
    runs that crossed (docs/theory.md (6.6) predicts α = −1, i.e. s·η ≈ C constant). ``n_runs`` counts the
    group's runs, ``diverged`` those that diverged (not fitted: their crossing is the blow-up, not the end of
    the leading terms), ``held`` the others that did not cross (not fitted), ``headline`` whether the
    prediction kind is the group's headline."""
    out = []
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault(rec["group"], []).append(rec)
    for group, recs in groups.items():
        headline = recs[0]["horizon"]["headline"]
        kinds = [k for k in TRACK_KINDS if any(k in r["horizon"]["by_weight_kind"] for r in recs)]
        for kind in kinds:
            weight_kinds: list[str] = []
            for r in recs:
                weight_kinds += [w for w in r["horizon"]["by_weight_kind"].get(kind, {}) if w not in weight_kinds]
            for wk in weight_kinds:
                for t in recs[0]["horizon"]["thresholds"]:
                    stable = [r for r in recs if not r.get("diverged")]
                    crossed = [(r["lr"], r["horizon"]["by_weight_kind"][kind][wk][t]["step"]) for r in stable
                               if (r["horizon"]["by_weight_kind"].get(kind, {}).get(wk) or {}).get(t) is not None]
                    fit = fit_power_law([c[0] for c in crossed], [c[1] for c in crossed])
                    out.append({"group": group, "prediction": kind, "headline": kind == headline, "weight": wk,
                                "threshold": t, **fit,
                                "s_eta_exponent": None if fit["exponent"] is None else fit["exponent"] + 1.0,
                                "n_runs": len(recs), "diverged": len(recs) - len(stable),
                                "held": len(stable) - len(crossed),
                                "lrs": sorted({c[0] for c in crossed})})
    return out


def headline_fits(fits: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The fits of each group's headline prediction."""
    return [f for f in fits if f["headline"]]
