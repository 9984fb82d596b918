"""``leadingterms sweep``: one training run per point of a grid, resumable, optionally on Dask workers."""

from __future__ import annotations

from collections.abc import Iterator

from leadingterms.cli import Command
from leadingterms.sweep import SweepConfig, SweepResult, run_sweep
from leadingterms.training.tracking import format_crossing


def show(res: SweepResult) -> Iterator[str]:
    for r in res.points:
        s = r.summary or {}
        loss = (s.get("final") or {}).get("loss")
        h = s.get("horizon") or {}
        head = h.get("headline")
        w_o = ((h.get("by_weight_kind") or {}).get(head) or {}).get("W_O") or {}
        hz = f"; {head} horizon W_O 20%: {format_crossing(w_o['20%'])}" if "20%" in w_o else ""
        took = f" in {r.seconds:.0f} s" if r.seconds else ""
        yield (f"{r.point.name}: {r.status}{took}" + (f"; final loss {loss:.4f}" if loss is not None else "")
               + hz + (f"; {r.error}" if r.error and r.status == "diverged" else ""))
    yield f"wrote {res.path} ({len(res.points)} runs under {res.path}/runs, {res.seconds:.0f} s)"
    yield f"next: leadingterms compare {res.path} --out {res.path}/compare"


COMMAND = Command(
    name="sweep",
    help="train one run per point of a grid (learning rates, batch sizes, layers, seeds, corpora); resumable",
    description="Train one `leadingterms train` run per point of the grid --corpora × --lrs × --batch-sizes × "
    "--layer-counts × --seeds into OUT/runs/<corpus>-lr<η>-bs<B>-L<L>-seed<s>; every other option is train's "
    "and applies to every point. Rerunning skips the points whose summary.json says they finished and continues "
    "partial ones from their last checkpoint; --force starts them over. --workers N runs N points at a time on "
    "a local Dask cluster (N processes, one thread each). Compare the runs with `leadingterms compare OUT --out "
    "DIR`.",
    config=SweepConfig,
    run=run_sweep,
    show=show,
)
