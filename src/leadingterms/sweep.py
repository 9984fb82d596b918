"""``leadingterms sweep``: a grid of training runs, one ordinary ``train`` run folder per point.

The grid is the product of corpora × learning rates × batch sizes × layer counts × seeds; every other
setting (steps, tracking, logging, ...) is shared and spelled as ``train`` spells it. Layout::

    OUT/sweep.json          the settings and every point run into OUT (name -> point), last statuses
    OUT/bases/<corpus>/     the full-corpus basis of each corpus, computed once (`leadingterms stats`)
    OUT/runs/<name>/        one `leadingterms train` run per point, <name> = <corpus>-lr<η>-bs<B>-L<L>-seed<s>

Resumable: a point whose summary.json says it finished (its steps reached, or diverged) is skipped;
a point with a partial run is continued from its last checkpoint (``train --resume``, bit-identical);
``--force`` starts every point over. Points run in this process one after the other, or with
``workers`` > 1 in parallel on a Dask LocalCluster (processes, one thread each; dask is imported only
then). Compare the runs with ``leadingterms compare OUT --out DIR``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadingterms.config import check_config, field_default, option
from leadingterms.errors import LeadingTermsError
from leadingterms.training.config import TrainConfig, resume_mismatch
from leadingterms.validate import nonnegative_int, out_folder, positive_float, positive_int

SWEEP_FILE = "sweep.json"
RUNS_DIR = "runs"
BASES_DIR = "bases"
_GRID = "grid (comma-separated lists; one run per combination)"
_OPTION_KEYS = ("help", "flag", "metavar", "check", "choices", "group", "repeat", "sep", "nargs", "exclusive",
                "negate", "cli", "cli_required")


def _train_option(name: str) -> Any:
    """The ``option`` of TrainConfig's field ``name`` (same flag, help, check, default): a setting
    shared by every point is spelled and checked exactly as ``train`` does."""
    f = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    return option(field_default(f), **{k: f.metadata[k] for k in _OPTION_KEYS})


def _each(check: Callable[[Any, str], Any]) -> Callable[[Any, str], None]:
    """A list check from an element check; also refuses an empty list."""
    def run(values: Any, name: str) -> None:
        if not values:
            raise LeadingTermsError(f"--{name.replace('_', '-')} needs at least one value")
        for v in values:
            check(v, name)
    return run


@dataclass(kw_only=True)
class SweepConfig:
    """``leadingterms sweep``: one training run per point of a grid. The grid options are lists with plural
    names (``--lrs 0.05,0.2,0.8``: a list of learning rates is another concept than train's one ``--lr``);
    every other option is ``train``'s (same flag, same check) and applies to every point."""

    corpora: list[str] = option(help="token stores from `leadingterms corpus`", metavar="DIR,DIR,...", sep=",",
                                check=_each(lambda v, n: None), group=_GRID)
    lrs: list[float] = option(help="learning rates", metavar="ETA,ETA,...", sep=",", check=_each(positive_float),
                              group=_GRID)
    batch_sizes: list[int] = option(help="sequences per micro-batch (N: full-batch GD)", metavar="B,B,...",
                                    sep=",", check=_each(positive_int), group=_GRID)
    layer_counts: list[int] = option(help="numbers of attention layers", metavar="L,L,...", sep=",",
                                     check=_each(positive_int), group=_GRID)
    seeds: list[int] = option(help="seeds of the data order (and of a normal init)", metavar="S,S,...", sep=",",
                              check=_each(nonnegative_int), group=_GRID, default_factory=lambda: [0])
    out: str = option(help="sweep folder to create or continue (finished points are skipped)", metavar="DIR")
    workers: int = option(1, help="points run in parallel on a Dask LocalCluster of N processes (1: one after "
                          "the other in this process)", metavar="N", check=positive_int)
    force: bool = option(False, help="start every point over (and recompute the bases)")
    steps: int | None = _train_option("steps")
    epochs: int | None = _train_option("epochs")
    grad_accum: int = _train_option("grad_accum")
    dtype: str = _train_option("dtype")
    init: str = _train_option("init")
    optimizer: str = _train_option("optimizer")
    device: str = _train_option("device")
    log_every: int = _train_option("log_every")
    checkpoint_every: int | None = _train_option("checkpoint_every")
    keep_last: int = _train_option("keep_last")
    track: tuple[str, ...] = _train_option("track")
    eval_sequences: int | None = _train_option("eval_sequences")
    progress: bool = option(True, help="progress bar over the points", cli=False)

    def __post_init__(self) -> None:
        track = list(self.track)
        self.track = () if track == ["none"] else tuple(track)

    def check(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise LeadingTermsError("give exactly one of --steps and --epochs")


@dataclass(frozen=True)
class Point:
    """One point of the grid."""

    corpus: str  # token store folder
    corpus_label: str  # its name in run folder names
    lr: float
    batch_size: int
    layers: int
    seed: int

    @property
    def name(self) -> str:
        """The run folder name: ``<corpus>-lr<η>-bs<B>-L<L>-seed<s>`` (η as Python writes the float)."""
        return f"{self.corpus_label}-lr{self.lr!r}-bs{self.batch_size}-L{self.layers}-seed{self.seed}"

    def to_json(self) -> dict[str, Any]:
        return {"corpus": self.corpus, "lr": self.lr, "batch_size": self.batch_size, "layers": self.layers,
                "seed": self.seed}


def _unique(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def corpus_labels(corpora: Sequence[str]) -> dict[str, str]:
    """Corpus folder -> its label (the folder name); refuses two corpora of the same name."""
    labels: dict[str, str] = {}
    for c in _unique(corpora):
        label = Path(c).resolve().name or "corpus"
        if label in labels.values():
            other = next(k for k, v in labels.items() if v == label)
            raise LeadingTermsError(f"--corpora {other} and {c} have the same folder name {label!r}; run folders "
                                    "are named after it: rename one")
        labels[c] = label
    return labels


def grid(cfg: SweepConfig) -> list[Point]:
    """Every point, in a fixed order (corpus, lr, batch size, layers, seed; each list deduplicated)."""
    labels = corpus_labels(cfg.corpora)
    return [Point(c, labels[c], float(lr), int(b), int(L), int(s))
            for c in labels for lr in _unique(cfg.lrs) for b in _unique(cfg.batch_sizes)
            for L in _unique(cfg.layer_counts) for s in _unique(cfg.seeds)]


def train_config(cfg: SweepConfig, point: Point, *, stats: str | None) -> TrainConfig:
    """The TrainConfig of one point: the point's grid values and every shared setting of ``cfg``."""
    names = {f.name for f in dataclasses.fields(TrainConfig)} & {f.name for f in dataclasses.fields(SweepConfig)}
    shared = {n: getattr(cfg, n) for n in names if n not in ("out", "force", "progress")}
    return TrainConfig(**shared, corpus=point.corpus, out=str(Path(cfg.out) / RUNS_DIR / point.name), lr=point.lr,
                       batch_size=point.batch_size, layers=point.layers, seed=point.seed, stats=stats,
                       force=cfg.force, resume=not cfg.force, progress=False)


# ----------------------------------------------------------------------------- state of a point


def point_state(run_dir: Path, requested_steps: int | None, requested_epochs: int | None) -> str:
    """``new`` (nothing there), ``partial`` (started, not finished: resumed), ``finished`` or ``diverged``
    (summary.json says so: skipped)."""
    from leadingterms.persist import read_json
    from leadingterms.schema import NONNEG_INT, OBJECT, POS_INT, check_fields
    from leadingterms.training.rundir import CONFIG_FILE, SUMMARY_FILE

    if not (run_dir / CONFIG_FILE).is_file():
        return "new"
    if not (run_dir / SUMMARY_FILE).is_file():
        return "partial"
    fix = "start the point over with --force"
    summary = check_fields(read_json(run_dir / SUMMARY_FILE, what="run summary"), {"final": OBJECT},
                           where=run_dir / SUMMARY_FILE, fix=fix)
    if summary.get("diverged"):
        return "diverged"
    info = check_fields(read_json(run_dir / CONFIG_FILE, what="run config"), {"steps_per_epoch": POS_INT},
                        where=run_dir / CONFIG_FILE, fix=fix)
    total = requested_steps if requested_steps is not None else \
        int(requested_epochs or 0) * int(info["steps_per_epoch"])
    final = summary["final"]
    if final:
        check_fields(final, {"step": NONNEG_INT}, where=f"{run_dir / SUMMARY_FILE} (final)", fix=fix)
    last = int(final.get("step", -1))
    return "finished" if last >= total else "partial"


def check_existing(tcfg: TrainConfig) -> None:
    """Refuse (before anything runs) a point folder trained with settings a resume would not accept."""
    from leadingterms.training.rundir import saved_config

    saved = saved_config(tcfg.out)
    if saved:
        why = resume_mismatch(TrainConfig.from_json(saved), tcfg)
        if why:
            raise LeadingTermsError(f"{tcfg.out} was run with other settings ({why}); use --force to start the "
                                    "points over, or another --out")


# ----------------------------------------------------------------------------- running


def run_point(tcfg: TrainConfig) -> dict[str, Any]:
    """Train one point (in this process or on a Dask worker) -> {"status", "seconds", "error"}; a bad
    input or divergence is reported, not raised, so that the other points go on."""
    from leadingterms.training import train

    t0 = time.perf_counter()
    try:
        res = train(tcfg)
        status, error = ("resumed" if res.resumed_from else "ran"), None
    except LeadingTermsError as exc:
        status, error = ("diverged" if "diverged" in str(exc) else "failed"), str(exc)
    return {"status": status, "seconds": time.perf_counter() - t0, "error": error}


@dataclass
class PointResult:
    """One point: its run folder, what happened (ran, resumed, skipped, diverged, failed) and its summary."""

    point: Point
    path: Path
    status: str
    seconds: float = 0.0
    error: str | None = None
    summary: dict[str, Any] | None = None


@dataclass
class SweepResult:
    """The sweep folder and every point of the grid."""

    path: Path
    points: list[PointResult]
    seconds: float
    notes: list[str] = field(default_factory=list)


def _map_dask(fn: Callable[[TrainConfig], dict[str, Any]], cfgs: list[TrainConfig], workers: int,
              done: Callable[[int, dict[str, Any]], None]) -> None:
    """``fn`` over ``cfgs`` on a Dask LocalCluster (processes, one thread each, everything on 127.0.0.1);
    ``done(i, output)`` as each finishes. The cluster is closed before returning."""
    import logging

    from dask.distributed import Client, LocalCluster, as_completed

    cluster = LocalCluster(n_workers=min(workers, len(cfgs)), threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        futures = {client.submit(fn, c, key=f"point-{i}", pure=False): i for i, c in enumerate(cfgs)}
        for fut in as_completed(futures):
            done(futures[fut], fut.result())


def run_sweep(cfg: SweepConfig) -> SweepResult:
    """Validate every point, compute each corpus's basis once, run the unfinished points and write
    OUT/sweep.json; see the module docstring."""
    from tqdm.auto import tqdm

    from leadingterms.basis import StatsConfig, run_stats
    from leadingterms.corpus.store import load_store
    from leadingterms.persist import read_json, write_json
    from leadingterms.progress import progress_enabled

    check_config(cfg)
    t0 = time.perf_counter()
    out = out_folder(cfg.out)
    points = grid(cfg)
    for c in _unique([p.corpus for p in points]):
        n = load_store(c).N
        if max(cfg.batch_sizes) > n:
            raise LeadingTermsError(f"--batch-sizes {max(cfg.batch_sizes)} exceeds the {n} sequences of {c}")
    needs_basis = bool({"closed_form", "second_order"} & set(cfg.track))
    stats = {p.corpus: str(out / BASES_DIR / p.corpus_label) if needs_basis else None for p in points}
    cfgs = [train_config(cfg, p, stats=stats[p.corpus]) for p in points]
    for tcfg in cfgs:
        check_config(tcfg)
        if not cfg.force:
            check_existing(tcfg)

    results = [PointResult(p, Path(t.out), "new") for p, t in zip(points, cfgs, strict=True)]
    todo = []
    for i, r in enumerate(results):
        state = "new" if cfg.force else point_state(r.path, cfg.steps, cfg.epochs)
        if state in ("finished", "diverged"):
            r.status = f"skipped ({state})"
        else:
            todo.append(i)
    from leadingterms.locks import output_lock

    with output_lock(out, folder=True, what="sweep"):  # one sweep writes a sweep folder at a time
        previous = _previous_record(out)  # checked before anything is written
        for c, d in stats.items():
            if d is not None and any(points[i].corpus == c for i in todo):
                run_stats(StatsConfig(corpus=c, out=d, force=cfg.force,
                                      progress=cfg.progress and progress_enabled()))

        every = {**(previous.get("points") or {}), **{p.name: p.to_json() for p in points}}
        record: dict[str, Any] = {"kind": "leadingterms.sweep", "config": dataclasses.asdict(cfg), "points": every}
        write_json(out / SWEEP_FILE, record)

        pbar = tqdm(total=len(todo), desc="sweep", unit="run", dynamic_ncols=True, leave=False,
                    disable=not (cfg.progress and progress_enabled()))

        def done(j: int, res: dict[str, Any]) -> None:
            r = results[todo[j]]
            r.status, r.seconds, r.error = res["status"], res["seconds"], res["error"]
            pbar.update(1)

        try:
            if cfg.workers > 1 and len(todo) > 1:
                _map_dask(run_point, [cfgs[i] for i in todo], cfg.workers, done)
            else:
                for j, i in enumerate(todo):
                    done(j, run_point(cfgs[i]))
        finally:
            pbar.close()

        for r in results:
            if (r.path / "summary.json").is_file():
                r.summary = read_json(r.path / "summary.json", what="run summary")
        record["results"] = {r.point.name: {"status": r.status, "seconds": r.seconds, "error": r.error}
                             for r in results}
        write_json(out / SWEEP_FILE, record)
        failed = [r for r in results if r.status == "failed"]
        if failed:
            first = failed[0]
            raise LeadingTermsError(f"{len(failed)} of {len(results)} points failed; first: {first.point.name}: "
                                    f"{first.error} (all statuses in {out / SWEEP_FILE}; rerun to retry)")
    return SweepResult(out, results, time.perf_counter() - t0)


def _previous_record(out: Path) -> dict[str, Any]:
    """OUT/sweep.json of an earlier invocation ({} when there is none), schema-checked."""
    from leadingterms.persist import read_json
    from leadingterms.schema import OBJECT, check_fields

    p = out / SWEEP_FILE
    if not p.is_file():
        return {}
    return check_fields(read_json(p, what="sweep record"), {"points": OBJECT.or_null()}, where=p,
                        fix="remove it and run the sweep again")
