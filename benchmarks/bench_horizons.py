"""The horizon-vs-learning-rate workflow on the shared TinyStories head, as a user runs it (issue 13).

corpus (word, K = 500 + <unk>, T = 64) -> ``sweep`` over lr 0.05, 0.2, 0.8 (3 layers, batch 64, 150
steps, logged every 5) with ``--workers 2`` -> the same ``sweep`` again (every point skipped) ->
``compare``. The baseline it replaces is the same three runs one after the other (``--workers 1``, i.e.
three ``train`` commands) and reading the metrics by hand. Every step is timed as a command (start-up,
loading and writing included); the fitted exponents of the headline (shadow) horizon are reported.

Overrides: BENCH_STEPS (150), BENCH_BATCH (64), BENCH_LRS ("0.05,0.2,0.8"), BENCH_BASELINE=0 skips the
sequential baseline (it doubles the time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tinystories-train-head-2MiB.txt.xz"
EXE = str(Path(sys.executable).with_name("leadingterms"))


def _timed(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, env={**os.environ,
                                                                             "LEADINGTERMS_NO_PROGRESS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"leadingterms {args[0]} failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - t0, proc.stdout


def _load() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def run(quick: bool = False) -> str:
    steps = int(os.environ.get("BENCH_STEPS", "20" if quick else "150"))
    batch = os.environ.get("BENCH_BATCH", "64")
    lrs = os.environ.get("BENCH_LRS", "0.05,0.2,0.8")
    baseline = os.environ.get("BENCH_BASELINE", "0" if quick else "1") != "0"
    if not DATA.is_file():
        return f"skipped: {DATA} not found"
    work = Path(tempfile.mkdtemp(prefix="bench-horizons-"))
    corpus = str(work / "corpus")
    rows = []
    t, _ = _timed("corpus", "--text", str(DATA), "--tokenizer", "word", "--vocab-size", "500", "--unk",
                  "--seq-len", "64", "--out", corpus)
    rows.append(("corpus", t, _load()))
    grid = ["--corpora", corpus, "--lrs", lrs, "--batch-sizes", batch, "--layer-counts", "3", "--steps", str(steps),
            "--log-every", "5"]
    t, _ = _timed("sweep", *grid, "--workers", "2", "--out", str(work / "sweep"))
    rows.append(("sweep, --workers 2 (Dask LocalCluster)", t, _load()))
    t, again = _timed("sweep", *grid, "--workers", "2", "--out", str(work / "sweep"))
    skipped = again.count("skipped (finished)")
    rows.append((f"the same sweep again ({skipped} points skipped)", t, _load()))
    t, out = _timed("compare", str(work / "sweep"), "--out", str(work / "compare"))
    rows.append(("compare", t, _load()))
    if baseline:
        tb, _ = _timed("sweep", *grid, "--out", str(work / "sequential"))
        rows.append(("baseline: the same runs one after the other (--workers 1)", tb, _load()))
    fits = json.loads((work / "compare" / "compare.json").read_text())["fits"]
    lines = [f"Sweep lr ∈ {{{lrs}}}, batch {batch}, 3 layers, {steps} steps logged every 5, on the shared "
             f"TinyStories head (word, V = 501, T = 64); outputs in {work}.", "",
             "| command | wall (s) | load average after |", "|---|---:|---:|"]
    lines += [f"| {name} | {t:.1f} | {load} |" for name, t, load in rows]
    if baseline:
        lines += ["", f"Parallel speed-up of the sweep: {rows[-1][1] / rows[1][1]:.2f}x (2 workers on "
                  f"{os.cpu_count()} cores)."]
    lines += ["", "Fitted exponent α of the headline horizon s ∝ η^α (theory −1):", "",
              "| prediction | weight | threshold | α | α + 1 (s·η) | runs fitted | η fitted |", "|---|---|---|---:|---:|---:|---|"]
    for f in fits:
        if f["headline"]:
            a = "–" if f["exponent"] is None else f"{f['exponent']:+.2f}"
            b = "–" if f["s_eta_exponent"] is None else f"{f['s_eta_exponent']:+.2f}"
            lines.append(f"| {f['prediction']} | {f['weight']} | {f['threshold']} | {a} | {b} | "
                         f"{f['n_points']} of {f['n_runs']} | {', '.join(f'{x:g}' for x in f['lrs']) or '–'} |")
    lines += ["", "```", out.strip(), "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
