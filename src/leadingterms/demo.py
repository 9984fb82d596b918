"""``leadingterms demo``: the whole pipeline on the embedded synthetic corpus, in about a minute.

OUT/corpus (token store) -> OUT/stats (basis, docs/theory.md §2) -> OUT/predictions.safetensors
(closed form at the last step, §3) -> OUT/run (3-layer SGD training tracked against the theory)
-> OUT/run/intervention.json -> OUT/run/report.html, and a summary of at most 10 lines.

Default settings (see :class:`DemoConfig`): 512 stories, T = 64, V = 300 (every word of the
grammar), batch 128 (4 steps per epoch, so every 4th step has seen the corpus exactly once
and the full-corpus closed form applies without minibatch noise), lr 0.8 and 40 steps: the
relative errors start below 1% and cross 5% and 20% within the run (the validity horizon).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadingterms.config import check_config, option
from leadingterms.errors import LeadingTermsError
from leadingterms.intervene import InterventionResult
from leadingterms.theory import param_name
from leadingterms.training.runs import Run
from leadingterms.training.tracking import horizon_lines
from leadingterms.validate import nonnegative_int, out_folder, positive_float, positive_int


@dataclass(kw_only=True)
class DemoConfig:
    """Settings of the demo; the defaults are the documented demo, tests shrink them."""

    out: str = option("demo-out", help="output folder", metavar="DIR")
    synthetic_docs: int = option(512, help="synthetic stories", metavar="N", check=positive_int)
    seq_len: int = option(64, help="sequence length", metavar="T", check=positive_int)
    layers: int = option(3, help="attention layers", check=positive_int)
    lr: float = option(0.8, help="SGD learning rate", check=positive_float)
    batch_size: int = option(128, help="batch size", check=positive_int)
    steps: int = option(40, help="training steps", check=positive_int)
    log_every: int = option(4, help="log every N steps", metavar="N", check=positive_int)
    eval_sequences: int | None = option(64, help="logged loss over the first M sequences", metavar="M",
                                        check=positive_int)
    intervention_sequences: int | None = option(64, help="intervention loss over the first M sequences",
                                                metavar="M", check=positive_int)
    k: int = option(5, help="top-k of the readouts", check=positive_int)
    heatmap_tokens: int = option(50, help="heatmaps and overlap over the N most frequent tokens", metavar="N",
                                 check=positive_int)
    seed: int = option(0, help="corpus and data-order seed", check=nonnegative_int)
    force: bool = option(False, help="replace the corpus, basis and predictions of an earlier demo in OUT made "
                                     "with other settings (the same settings reuse them)")
    progress: bool = option(True, help="progress bars", cli=False)

    def check(self) -> None:
        if self.heatmap_tokens < 2:
            raise LeadingTermsError(f"--heatmap-tokens must be an integer >= 2, got {self.heatmap_tokens}")


@dataclass
class DemoResult:
    """What the demo wrote and found; ``lines`` is its printed summary (at most 10 lines)."""

    report: Path
    run: Path
    lines: list[str]
    seconds: float
    planted: list[dict[str, Any]]
    overlaps: list[dict[str, Any]]
    intervention: InterventionResult
    notes: list[str] = field(default_factory=list)


def horizon_demo_lines(h: dict[str, Any]) -> list[str]:
    """Two lines: the headline horizon (the shadow under SGD) and the other prediction's, sustained crossings
    of 5%/20% in steps and s·η, earliest layer (docs/theory.md §6.3)."""
    lines = horizon_lines(h, why=False)
    return [lines[0], *[ln for ln in lines[1:] if "second order" not in ln][:1]]


def summary_lines(cfg: DemoConfig, *, store: Any, run: Run, intervention: InterventionResult,
                  planted: list[dict[str, Any]], overlaps: list[dict[str, Any]], report: Path, seconds: float,
                  step: int | None) -> list[str]:
    """The at most 10 lines printed at the end of the demo."""
    from leadingterms.analyses import per_layer_text
    from leadingterms.training.tracking import run_horizon

    first, last = run.metrics[0], run.metrics[-1]
    lines = [
        f"report: {report}",
        f"corpus: {store.N} synthetic stories as sequences of T={store.T}, V={store.V}; "
        f"training: {cfg.layers} layers, SGD lr {cfg.lr:g}, batch {cfg.batch_size}, "
        f"{run.info.get('total_steps')} steps, "
        f"loss {first['loss']:.3f} -> {last['loss']:.3f}",
        *horizon_demo_lines(run_horizon(run)),
    ]
    o = intervention.original_loss
    by = {r["param"]: r for r in intervention.rows}
    L = cfg.layers

    def worst(kind: str) -> float:
        return max(by[param_name(kind, l)]["loss_removed"] - o for l in range(L))

    lines.append(f"intervention at step {intervention.step} (loss {o:.4f}): removing the predicted direction "
                 f"raises it by W_O {by['W_O']['loss_removed'] - o:+.4f}, V {worst('V'):+.4f}, "
                 f"W {worst('W'):+.2e}, P {worst('P'):+.2e} (max over layers)")
    for kind in ("bigram", "context"):
        rows = [r for r in planted if r["kind"] == kind]
        if rows:
            how = per_layer_text(rows, lambda r: f"{r['hits']}/{r['total']}")
            lines.append(f"planted {kind} pairs in top-{cfg.k} (step {step}; ^(l): layers 0..{L - 1}): {how}")
    if planted:
        lines.append("  (bigram: b in row a of B̄ / W_O, a in row b of Q̄ / W^(l); context: b in column a of "
                     "Φ̄ scaled by 1/π_b, and in row a of Ḡ / V^(l)W_O)")
    ov = per_layer_text(overlaps, lambda d: f"{d['overlap']:.2f}")
    lines.append(f"overlap@{cfg.k} learned (step {step}) vs predicted on the {cfg.heatmap_tokens} most frequent "
                 f"rows: {ov} (W_O~B̄, V~Φ̄ᵀB̄ᵀ, V·W_O~Ḡ, W~Q̄); total {seconds:.0f} s")
    return lines[:10]


def run_demo(cfg: DemoConfig, *, on_stage: Callable[[str], None] | None = None) -> DemoResult:
    """Run every stage into ``cfg.out``; ``on_stage(message)`` is told when each stage starts."""
    from leadingterms.basis import StatsConfig, run_stats
    from leadingterms.corpus.pipeline import CorpusConfig, run_corpus
    from leadingterms.intervene import InterventionConfig, run_intervention
    from leadingterms.predict import PredictConfig, run_predict
    from leadingterms.report import ReportConfig, build_report
    from leadingterms.training import TrainConfig, load_run, train

    check_config(cfg)
    t0 = time.perf_counter()
    out = out_folder(cfg.out)

    def stage(msg: str) -> None:
        if on_stage is not None:
            on_stage(f"[{time.perf_counter() - t0:5.1f} s] {msg}")

    stage(f"corpus: {cfg.synthetic_docs} synthetic stories -> {out / 'corpus'}")
    store = run_corpus(CorpusConfig(synthetic_docs=cfg.synthetic_docs, synthetic_seed=cfg.seed,
                                    seq_len=cfg.seq_len, out=str(out / "corpus"), force=cfg.force)).store
    stage(f"basis functions (N={store.N}, T={store.T}, V={store.V}) -> {out / 'stats'}")
    run_stats(StatsConfig(corpus=str(out / "corpus"), out=str(out / "stats"), force=cfg.force,
                          progress=cfg.progress))
    stage(f"closed-form predictions at step {cfg.steps} -> {out / 'predictions.safetensors'}")
    run_predict(PredictConfig(stats=str(out / "stats"), steps=cfg.steps, lr=cfg.lr, layers=cfg.layers,
                              out=str(out / "predictions.safetensors"), force=cfg.force))
    stage(f"training {cfg.layers} layers for {cfg.steps} steps (lr {cfg.lr:g}, batch {cfg.batch_size}) "
          f"-> {out / 'run'}")
    train(TrainConfig(corpus=str(out / "corpus"), out=str(out / "run"), layers=cfg.layers, lr=cfg.lr,
                      batch_size=cfg.batch_size, steps=cfg.steps, log_every=cfg.log_every,
                      eval_sequences=cfg.eval_sequences, stats=str(out / "stats"), seed=cfg.seed,
                      force=True, progress=cfg.progress))
    stage("causal intervention")
    intervention = run_intervention(InterventionConfig(run=str(out / "run"),
                                                       max_sequences=cfg.intervention_sequences))
    stage("report")
    report = build_report(ReportConfig(run=str(out / "run"), k=cfg.k, within_horizon=True,
                                       heatmap_tokens=cfg.heatmap_tokens))
    run = load_run(out / "run")
    overlaps = report.overlaps
    seconds = time.perf_counter() - t0
    lines = summary_lines(cfg, store=store, run=run, intervention=intervention, planted=report.planted,
                          overlaps=overlaps, report=report.path, seconds=seconds, step=report.step)
    return DemoResult(report=report.path, run=out / "run", lines=lines, seconds=seconds, planted=report.planted,
                      overlaps=overlaps, intervention=intervention)
