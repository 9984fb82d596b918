"""leadingterms: gradient leading terms of attention-only transformers (Im et al., ICLR 2026).

Data flows one way: corpus -> tokens -> basis functions -> predictions -> (training | pretrained
comparison) -> analyses -> report. Each stage has one typed config and a runner returning a
typed result; ``leadingterms <command>`` (:mod:`leadingterms.cli`) is a thin layer over them.
The theory the code implements is docs/theory.md.

The public API (imported lazily, so ``import leadingterms`` is cheap)::

    run_corpus(CorpusConfig(...)) -> CorpusResult      load_store(DIR) -> TokenStore
    run_stats(StatsConfig(...)) -> StatsResult         compute_basis(tokens, V) -> Basis, load_basis(DIR)
    reduce_basis(shards, V) -> Basis                   the same as a map-reduce over row shards
    closed_form(basis, s, eta, L), predict(...)        run_predict(PredictConfig(...)) -> PredictResult
    Predictions(basis, L).closed_form(s, eta)          fixed matrices once, any (s, eta) after
    Shadow(V, T, L, eta)                               the SGD path-dependent leading terms
    train(TrainConfig(...)) -> RunResult               load_run(RUN) -> Run
    run_sweep(SweepConfig(...)) -> SweepResult         compare_runs(CompareRunsConfig(...)) -> CompareRunsResult
    run_intervention(InterventionConfig(...))          intervene(model, basis, tokens, step=, lr=)
    run_associations(AssociationsConfig(...))          open_readouts(stats, run, step).top(name, token)
    build_explorer(ExploreConfig(...))                 run_with_cache(model, tokens), logit_lens(cache, W_O)
    build_report(ReportConfig(...)) -> ReportResult    run_demo(DemoConfig(...)) -> DemoResult
    run_compare(CompareConfig(...)) -> CompareResult   run_suite(SuiteConfig(...)) -> SuiteResult
    WEIGHTS, MATRICES                                  the theory's tables (leadingterms.theory)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_EXPORTS = {
    "LeadingTermsError": "leadingterms.errors",
    "SourceConfig": "leadingterms.corpus.sources",
    "CorpusConfig": "leadingterms.corpus.pipeline",
    "CorpusResult": "leadingterms.corpus.pipeline",
    "run_corpus": "leadingterms.corpus.pipeline",
    "TokenStore": "leadingterms.corpus.store",
    "ShardedArray": "leadingterms.corpus.store",
    "load_store": "leadingterms.corpus.store",
    "ParallelConfig": "leadingterms.distributed",
    "Basis": "leadingterms.basis.types",
    "compute_basis": "leadingterms.basis.stats",
    "reduce_basis": "leadingterms.basis.stats",
    "load_basis": "leadingterms.basis.io",
    "save_basis": "leadingterms.basis.io",
    "StatsConfig": "leadingterms.basis.runner",
    "StatsResult": "leadingterms.basis.runner",
    "run_stats": "leadingterms.basis.runner",
    "WEIGHTS": "leadingterms.theory",
    "MATRICES": "leadingterms.theory",
    "closed_form": "leadingterms.predict",
    "predict": "leadingterms.predict",
    "Predictions": "leadingterms.predict",
    "PredictConfig": "leadingterms.predict",
    "PredictResult": "leadingterms.predict",
    "run_predict": "leadingterms.predict",
    "Shadow": "leadingterms.shadow",
    "AttentionOnlyTransformer": "leadingterms.model",
    "ModelConfig": "leadingterms.model",
    "TrainConfig": "leadingterms.training.config",
    "RunResult": "leadingterms.training.runner",
    "train": "leadingterms.training.runner",
    "Run": "leadingterms.training.runs",
    "load_run": "leadingterms.training.runs",
    "SweepConfig": "leadingterms.sweep",
    "SweepResult": "leadingterms.sweep",
    "run_sweep": "leadingterms.sweep",
    "CompareRunsConfig": "leadingterms.comparison.runner",
    "CompareRunsResult": "leadingterms.comparison.runner",
    "compare_runs": "leadingterms.comparison.runner",
    "InterventionConfig": "leadingterms.intervene",
    "InterventionResult": "leadingterms.intervene",
    "intervene": "leadingterms.intervene",
    "run_intervention": "leadingterms.intervene",
    "AssociationsConfig": "leadingterms.associations",
    "AssociationsResult": "leadingterms.associations",
    "basis_associations": "leadingterms.associations",
    "run_associations": "leadingterms.associations",
    "Readouts": "leadingterms.associations",
    "open_readouts": "leadingterms.associations",
    "ExploreConfig": "leadingterms.explore",
    "build_explorer": "leadingterms.explore",
    "run_with_cache": "leadingterms.lens",
    "logit_lens": "leadingterms.lens",
    "InspectConfig": "leadingterms.lens",
    "run_inspect": "leadingterms.lens",
    "ReportConfig": "leadingterms.report.build",
    "ReportResult": "leadingterms.report.build",
    "build_report": "leadingterms.report.build",
    "DemoConfig": "leadingterms.demo",
    "DemoResult": "leadingterms.demo",
    "run_demo": "leadingterms.demo",
    "CompareConfig": "leadingterms.pretrained.compare",
    "CompareResult": "leadingterms.pretrained.compare",
    "run_compare": "leadingterms.pretrained.compare",
    "SuiteConfig": "leadingterms.pretrained.suite",
    "SuiteResult": "leadingterms.pretrained.suite",
    "run_suite": "leadingterms.pretrained.suite",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'leadingterms' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from leadingterms.associations import (
        AssociationsConfig,
        AssociationsResult,
        Readouts,
        basis_associations,
        open_readouts,
        run_associations,
    )
    from leadingterms.basis.io import load_basis, save_basis
    from leadingterms.basis.runner import StatsConfig, StatsResult, run_stats
    from leadingterms.basis.stats import compute_basis, reduce_basis
    from leadingterms.basis.types import Basis
    from leadingterms.comparison.runner import CompareRunsConfig, CompareRunsResult, compare_runs
    from leadingterms.corpus.pipeline import CorpusConfig, CorpusResult, run_corpus
    from leadingterms.corpus.sources import SourceConfig
    from leadingterms.corpus.store import ShardedArray, TokenStore, load_store
    from leadingterms.demo import DemoConfig, DemoResult, run_demo
    from leadingterms.distributed import ParallelConfig
    from leadingterms.errors import LeadingTermsError
    from leadingterms.explore import ExploreConfig, build_explorer
    from leadingterms.intervene import InterventionConfig, InterventionResult, intervene, run_intervention
    from leadingterms.lens import InspectConfig, logit_lens, run_inspect, run_with_cache
    from leadingterms.model import AttentionOnlyTransformer, ModelConfig
    from leadingterms.predict import PredictConfig, Predictions, PredictResult, closed_form, predict, run_predict
    from leadingterms.pretrained.compare import CompareConfig, CompareResult, run_compare
    from leadingterms.pretrained.suite import SuiteConfig, SuiteResult, run_suite
    from leadingterms.report.build import ReportConfig, ReportResult, build_report
    from leadingterms.shadow import Shadow
    from leadingterms.sweep import SweepConfig, SweepResult, run_sweep
    from leadingterms.theory import MATRICES, WEIGHTS
    from leadingterms.training.config import TrainConfig
    from leadingterms.training.runner import RunResult, train
    from leadingterms.training.runs import Run, load_run
