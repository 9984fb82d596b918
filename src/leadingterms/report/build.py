"""``leadingterms report``: RUN/report.html, one self-contained page about a training run.

Sections: configuration, corpus summary, basis functions (top associations), tracking plots,
validity horizon, intervention table, association comparisons (learned vs predicted, planted
associations), and the pretrained comparison when the run has one (RUN/pretrained/index.json
or ``--pretrained DIR``). Figures are drawn into RUN/figures/ (PNG + SVG) and inlined as PNG
data URIs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadingterms import analyses
from leadingterms.basis import Basis
from leadingterms.config import check_config, option
from leadingterms.corpus.store import TokenStore
from leadingterms.errors import LeadingTermsError
from leadingterms.report.html import esc, fmt, html_table, image, kv_table, page, table, tokens_cell
from leadingterms.training.runs import Run
from leadingterms.training.tracking import PREDICTION_NAMES
from leadingterms.validate import learned_step, positive_int

REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
PRETRAINED_DIR = "pretrained"
SECTION_IDS = ("configuration", "corpus", "basis", "tracking", "horizon", "intervention", "associations")
#: basis matrices shown in the basis section (names of leadingterms.associations)
BASIS_READOUTS = ("bigram", "value", "composition", "attention", "interchange-next", "interchange-prev")


def at_least_two(value: Any, name: str) -> int:
    """An integer >= 2 (a check for :func:`leadingterms.config.option`)."""
    if positive_int(value, name) < 2:
        raise LeadingTermsError(f"--{name.replace('_', '-')} must be an integer >= 2, got {value!r}")
    return int(value)


@dataclass(kw_only=True)
class ReportConfig:
    """``leadingterms report``: one self-contained HTML page about a training run."""

    run: str = option(help="run folder from `leadingterms train`", metavar="RUN")
    out: str | None = option(None, help="output file (default RUN/report.html)", metavar="FILE")
    tokens: list[str] | None = option(None, help="tokens whose rows are listed (default: the 3 most frequent and "
                                      "planted subjects)", metavar="T1,T2,...", sep=",")
    k: int = option(5, help="top-k of each readout", check=positive_int)
    step: int | None = option(None, help="checkpoint compared with the predictions (default: the latest)",
                              metavar="S", check=learned_step, exclusive="which_step")
    within_horizon: bool = option(False, help="compare the last checkpoint before the headline horizon (the "
                                  "shadow's under minibatch SGD, the closed form's under full-batch GD): the "
                                  "earliest sustained crossing of 20% relative error", exclusive="which_step")
    heatmap_tokens: int = option(50, help="heatmaps and overlap over the N most frequent tokens", metavar="N",
                                 check=at_least_two)
    pretrained: str | None = option(None, help="a `compare-pretrained --out DIR` folder to include",
                                    metavar="DIR")


@dataclass
class ReportResult:
    """The page written and the analyses it shows (the demo prints them)."""

    path: Path
    step: int | None  # the checkpoint compared (None: no checkpoint after step 0)
    planted: list[dict[str, Any]] = field(default_factory=list)  # analyses.planted_recovery
    overlaps: list[dict[str, Any]] = field(default_factory=list)  # analyses.overlap_summary, every layer
    notes: list[str] = field(default_factory=list)


def compare_step(run: Run, step: int | None = None, within_horizon: bool = False) -> int | None:
    """The checkpoint whose weights the report compares with the predictions.

    ``step`` if given; else with ``within_horizon`` the last checkpoint (after step 0) before the
    headline horizon (docs/theory.md §6.3: the shadow's under minibatch SGD, the closed form's under
    full-batch GD): the earliest sustained crossing of 20% over the weights (the latest checkpoint if
    none crossed); else the latest checkpoint. None when the run has no checkpoint after step 0.
    """
    if step is not None:
        return step
    steps = sorted(s for s in run.checkpoints if s > 0)
    if not steps:
        return None
    horizon = headline_horizon(run) if within_horizon else None
    if horizon is not None:
        before = [s for s in steps if s < horizon]
        return before[-1] if before else steps[0]  # none before it: the first (the page says so)
    return steps[-1]


def headline_horizon(run: Run) -> int | None:
    """The step of the headline prediction's earliest sustained 20% crossing over the weights, or None."""
    from leadingterms.training.tracking import run_horizon

    h = run_horizon(run)
    by_weight = h["by_prediction"].get(h["headline"]) or {}
    crossings = [int(hz["20%"]["step"]) for hz in by_weight.values() if hz.get("20%") is not None]
    return min(crossings) if crossings else None


# ----------------------------------------------------------------------------- sections


def section_configuration(run: Run) -> str:
    info = run.info
    items: list[tuple[str, Any]] = [("run directory", str(run.path))]
    items += [(k, info.get(k)) for k in ("V", "T", "N", "steps_per_epoch", "total_steps") if k in info]
    items += [(k, v if not isinstance(v, (list, tuple)) else ", ".join(map(str, v)))
              for k, v in run.config.to_json().items() if k not in ("force", "resume", "progress")]
    s = run.summary or {}
    for k in ("wall_time_s", "steps_per_s"):
        if s.get(k) is not None:
            items.append((k.replace("_", " "), float(s[k])))
    caveats = info.get("theory_caveats") or []
    warn = "".join(f'<p class="warn">{esc(c)}</p>' for c in caveats)
    if s.get("diverged"):
        warn += f'<p class="warn">training diverged: {esc(s["diverged"])}</p>'
    if run.summary is None:
        warn += ('<p class="warn">the run has no summary.json yet (unfinished): figures show the steps '
                 'logged so far</p>')
    return warn + kv_table(items)


def section_corpus(store: TokenStore | None, corpus_path: str) -> str:
    if store is None:
        return (f'<p class="warn">the run\'s token store {esc(corpus_path)} could not be read; '
                'no corpus summary.</p>')
    from leadingterms.corpus.pipeline import summary

    try:
        text = summary(store)
    except Exception:  # a store written by something other than the corpus pipeline
        text = f"{store.N:,} sequences of T = {store.T} tokens, V = {store.V}"
    out = f"<pre>{esc(text)}</pre>"
    top = store.meta.get("top_tokens") or []
    if top:
        out += "<h3>Most frequent tokens</h3>" + table(("token", "count"), [(str(t), int(c)) for t, c in top[:10]])
    planted = store.meta.get("planted") or []
    if planted:
        kinds: dict[str, list[str]] = {}
        for p in planted:
            kinds.setdefault(p["kind"], []).append(f"{p['a']}→{p['b']}")
        out += "<h3>Planted associations (ground truth of the synthetic corpus)</h3>" + html_table(
            ("kind", "pairs (a→b)"), [(esc(k), f'<span class="tokens">{esc(", ".join(v))}</span>')
                                      for k, v in kinds.items()])
    return out


def section_basis(basis: Basis, vocab: Sequence[str], tokens: Sequence[str], k: int) -> str:
    from leadingterms.associations import basis_associations
    from leadingterms.theory import MATRICES

    rows = []
    for tok in tokens:
        cells = [f'<span class="tokens"><b>{esc(tok)}</b></span>']
        for name in BASIS_READOUTS:
            cells.append(tokens_cell(basis_associations(basis, vocab, name, tok, k,
                                                         exclude_self=name.startswith("interchange"))))
        rows.append(cells)
    header = ["token (row)"] + [f"{n} ({MATRICES[n].cols})" for n in BASIS_READOUTS]
    intro = (f"<p>Top-{k} entries of each token's row (largest first) in the corpus statistics of "
             "docs/theory.md §2: "
             "bigram B̄ (next tokens), value Φ̄ᵀB̄ᵀ (the residual direction V writes when a token is attended), "
             "composition Ḡ = Φ̄ᵀB̄ᵀB̄ (next tokens promoted through value and output), attention Q̄ (keys a "
             "query attends to), and the interchangeability maps B̄ᵀB̄ / B̄B̄ᵀ (the token itself left out). "
             "Same readouts as <code>leadingterms associations</code>.</p>")
    return intro + html_table(header, rows)


def section_tracking(fig_dir: Path, have_positional: bool, have_val: bool = False) -> str:
    out = ("<p>Cosine similarity and relative error ‖W − Ŵ‖<sub>F</sub>/‖W‖<sub>F</sub> between each learned "
           "weight and its prediction: the closed form of docs/theory.md §3 (full-corpus statistics), the "
           "second-order "
           "terms of §4 (W_O and V only) and the path-dependent shadow of §5 (the batches actually seen). "
           "Lines: mean over layers; bands: range across layers. Dotted: 5% and 20%. Cosine hides what the "
           "relative error shows (1 − cos ≈ rel²/2).</p>")
    out += image(fig_dir / "tracking.png", "tracking: cosine (top) and relative error (bottom, log scale) vs step")
    out += image(fig_dir / "loss.png", "mean cross-entropy of the weights at each logged step over the training "
                 "(evaluation) sequences" + (" and the validation sequences" if have_val else ""))
    if have_positional:
        out += image(fig_dir / "positional.png",
                     "learned relative-position biases P^(l) vs the prediction c(s)η⁴Δ at the compared step")
    return out


def section_horizon(run: Run) -> str:
    from leadingterms.training.tracking import format_crossing, run_horizon

    h = run_horizon(run)
    by_pred = h["by_prediction"]
    if not by_pred:
        return "<p>No predictions were tracked in this run.</p>"
    head = h["headline"]
    if head is None:
        return f"<p>{esc(h['why'])}.</p>"
    kinds = [head, *[k for k in PREDICTION_NAMES if k != head and k in by_pred]]
    names: list[str] = []
    for k in kinds:
        names += [n for n in by_pred.get(k, {}) if n not in names]
    last = run.metrics[-1] if run.metrics else {}
    thresholds = h["thresholds"]
    header = ["weight"] + [f"{PREDICTION_NAMES[k]}{' (headline)' if k == head else ''}: {t}"
                           for k in kinds for t in thresholds]
    header += [f"final rel, {PREDICTION_NAMES[k]}" for k in kinds]
    rows, cls = [], []
    for n in names:
        row: list[Any] = [n]
        c = [""]
        for k in kinds:
            for t in thresholds:
                hz = by_pred.get(k, {}).get(n)
                row.append("n/a" if hz is None else format_crossing(hz[t]))
                c.append("hit" if hz is not None and hz[t] is None else ("miss" if k == head else ""))
        for k in kinds:
            row.append(((last.get(k) or {}).get(n) or {}).get("rel"))
            c.append("")
        rows.append(row)
        cls.append(c)
    written_before = run.summary is not None and "horizon" not in run.summary
    old = ('<p class="note">This run was written before summary.json recorded sustained horizons; they are '
           "computed here from its metrics.jsonl.</p>") if written_before else ""
    return (f"<p><b>Headline: the {esc(PREDICTION_NAMES[head])}</b> — {esc(h['why'])}.</p>"
            f"<p>Horizon = the first logged step after which the relative error ‖W − Ŵ‖<sub>F</sub>/‖W‖"
            f"<sub>F</sub> stays above the threshold until the end of the run (a sustained crossing, "
            f"docs/theory.md (6.5)); a noisy excursion that comes back below does not count. Given in steps s "
            f"and in s·η (η = {esc(h['lr'])}), the expansion parameter: the step horizon should shrink like 1/η "
            f"and s·η stay roughly constant ((6.6); compare runs with <code>leadingterms compare</code>). "
            f"“held”: within the threshold at the last logged step ({esc(h['last_step'])}).</p>"
            + old + table(header, rows, cls=cls))


def section_intervention(run: Run | str | Path) -> str:
    from leadingterms.intervene import read_intervention
    from leadingterms.training.runs import load_run

    if not isinstance(run, Run):
        run = load_run(run)
    run_path = Path(run.path)
    res = read_intervention(run)
    if res is None:
        return (f"<p>Not computed: run <code>leadingterms intervene --run {esc(run_path)}</code> and rebuild the "
                "report.</p>")
    from leadingterms.intervene import control_summary

    o = float(res["original_loss"])
    seeds = res.get("control_seeds") or []
    rows = []
    for r in res["rows"]:
        row: list[Any] = [r["param"], r["direction"], r["cos"], r["projection_coef"], r["loss_removed"],
                          r["loss_removed"] - o]
        c = control_summary(r, o) if seeds else None
        if seeds:
            row += [None, None] if c is None else [c[0], f"[{fmt(c[1], 3)}, {fmt(c[2], 3)}]"]
        rows.append(row + [r["loss_replaced"], r["loss_replaced"] - o])
    intro = (f"<p>Dataset loss (mean cross-entropy over {res['n_sequences']:,} training sequences) of the "
             f"checkpoint at step {res['step']}: <b>{o:.6f}</b>. Each row changes one weight: "
             "<i>removed</i> = W − (⟨W,T⟩<sub>F</sub>/‖T‖²<sub>F</sub>)·T with T its predicted direction; "
             "<i>replaced</i> = W set to its closed-form prediction at that step. The orders η, η², η⁴ of the "
             "leading terms predict that removing W_O moves the loss most and attention least.</p>")
    header = ["weight", "direction T", "cos(W, T)", "⟨W,T⟩/‖T‖²", "loss, projection removed", "Δ"]
    if seeds:
        intro += (f"<p><i>random control</i>: the same norm |⟨W,T⟩<sub>F</sub>|/‖T‖<sub>F</sub> removed along a "
                  f"random direction instead (i.i.d. N(0,1) entries; {len(seeds)} seeds: "
                  f"{esc(', '.join(map(str, seeds)))}; docs/theory.md (7.3)). A Δ far above the control's is "
                  "specific to the predicted direction; a Δ like it says only that the weight's norm matters.</p>")
        header += ["Δ, random control (mean)", "[min, max]"]
    header += ["loss, closed form", "Δ"]
    return intro + table(header, rows, numeric=tuple(i >= 2 for i in range(len(header))))


def section_associations(comps: Sequence[analyses.Comparison], vocab: Sequence[str], tokens: Sequence[str], k: int,
                         step: int, fig_dir: Path, summary: Sequence[Mapping[str, Any]],
                         planted: Sequence[Mapping[str, Any]], n_freq: int, step_note: str = "") -> str:
    chosen = [vocab.index(t) for t in tokens]
    summary_chosen = analyses.overlap_summary(comps, chosen, k)
    rows = [(s["learned"], s["predicted"], s["cos"], s["overlap"], c["overlap"])
            for s, c in zip(summary, summary_chosen, strict=True)]
    out = (f"<p>Learned weights at step {step} ({esc(step_note)}) against the basis matrices they are "
           f"predicted to be proportional to. overlap@{k} = mean over rows of |top-{k}(learned row) ∩ "
           f"top-{k}(predicted row)|/{k}, "
           f"over the {n_freq} most frequent tokens and over the listed tokens.</p>")
    out += table(("learned", "predicted", "cos (Frobenius)", f"overlap@{k}, top-{n_freq} tokens",
                  f"overlap@{k}, listed tokens"), rows, numeric=(False, False, True, True, True))
    if planted:
        out += (f"<h3>Planted associations found in the top-{k}</h3>"
                + table(("kind", "readout", "layer", "found", "of", "definition", "missed"),
                        [(r["kind"], r["readout"], "–" if r["layer"] is None else str(r["layer"]), r["hits"],
                          r["total"], r["description"],
                          ", ".join(r["missed"][:8]) + (" …" if len(r["missed"]) > 8 else ""))
                         for r in planted], numeric=(False, False, True, True, True, False, False)))
    shown = [c for c in comps if c.layer in (None, 0)]
    for c in shown:
        sbs = analyses.side_by_side(c, vocab, tokens, k)
        body = [(f'<span class="tokens"><b>{esc(r["token"])}</b></span>',
                 tokens_cell(r["learned"], {t for t, _ in r["predicted"]}),
                 tokens_cell(r["predicted"], {t for t, _ in r["learned"]}), f'{r["common"]}/{k}') for r in sbs]
        out += (f"<h3>{esc(c.learned_label)} vs {esc(c.predicted_label)} "
                f"(row = {esc(c.rows)}, top-{k} {esc(c.cols)}s)</h3>"
                + html_table(("token", f"learned {c.learned_label}", f"predicted {c.predicted_label}", "common"),
                              body))
    out += '<p class="note">Bold: tokens in both lists. Layers other than 0 are in the tables above.</p>'
    if (fig_dir / "layer_readouts.png").is_file():
        out += image(fig_dir / "layer_readouts.png",
                     f"per-layer readouts of the learned weights at step {step}: planted pairs found in the "
                     f"top-{k} and overlap@{k} with the prediction over the {n_freq} most frequent tokens")
    if (fig_dir / "heatmaps.png").is_file():
        out += image(fig_dir / "heatmaps.png",
                     f"learned (left) vs predicted (right) on the {n_freq} most frequent tokens; each panel "
                     "scaled by its largest |entry|")
    return out


# ----------------------------------------------------------------------------- assembly


def _step_note(run: Run, step: int, cfg: ReportConfig) -> str:
    latest = max(run.checkpoints)
    if cfg.step is not None:
        return "chosen with --step" if step != latest else "the last checkpoint"
    horizon = headline_horizon(run) if cfg.within_horizon else None
    if horizon is not None and step >= horizon:
        return (f"the first checkpoint: none is before the headline horizon (sustained relative error above 20% "
                f"from step {horizon}); training ran to step {latest}")
    if step != latest:
        return (f"the last checkpoint before the headline horizon (sustained relative error above 20%); "
                f"training ran to step {latest}")
    return "the last checkpoint"


def build_report(cfg: ReportConfig) -> ReportResult:
    """Draw the figures, write the report and return it with the analyses it shows."""
    from leadingterms.associations import token_index
    from leadingterms.training import load_run

    check_config(cfg)
    run = load_run(cfg.run)
    run_path = Path(cfg.run)
    store = run.store(missing_ok=True)  # hash-checked; None when the store was moved or deleted
    basis = run.basis()
    vocab = basis.vocab or (store.vocab if store is not None else None)
    if vocab is None:
        raise LeadingTermsError(f"no vocabulary: the run's basis has none and its corpus {run.config.corpus} "
                                "is unreadable")
    planted_pairs = list((store.meta.get("planted") or []) if store is not None else [])
    tokens = list(cfg.tokens) if cfg.tokens else analyses.default_tokens(basis, vocab, planted_pairs)
    for t in tokens:
        token_index(vocab, t)  # one-line error for an unknown token
    k = min(cfg.k, len(vocab))

    step = compare_step(run, cfg.step, cfg.within_horizon)
    model = run.load_checkpoint(step) if step is not None else None  # one-line error for a missing step
    pre_dir = Path(cfg.pretrained) if cfg.pretrained else run_path / PRETRAINED_DIR
    if cfg.pretrained and not (pre_dir / "index.json").is_file():
        raise LeadingTermsError(f"--pretrained {pre_dir} has no index.json (make it with `leadingterms "
                                "compare-pretrained --out DIR`)")
    horizon_html = section_horizon(run)
    intervention_html = section_intervention(run)  # refuses an intervention of another run: before writing
    report_path = Path(cfg.out) if cfg.out else run_path / REPORT_FILE
    from leadingterms.locks import output_lock

    with output_lock(report_path, folder=False, what="report"):  # one writer of a report (and its figures)
        return _draw_and_write(cfg, run, store, basis, vocab, tokens, k, step, model, pre_dir, planted_pairs,
                               horizon_html, intervention_html, report_path)


def _draw_and_write(cfg: ReportConfig, run: Run, store: TokenStore | None, basis: Basis, vocab: list[str],
                    tokens: list[str], k: int, step: int | None, model: Any, pre_dir: Path,
                    planted_pairs: list[Any], horizon_html: str, intervention_html: str,
                    report_path: Path) -> ReportResult:
    """The figures and the page of :func:`build_report`, every input checked already."""
    from leadingterms import plots
    from leadingterms.persist import atomic_path
    from leadingterms.predict import closed_form
    from leadingterms.theory import param_name

    run_path = Path(cfg.run)
    fig_dir = run_path / FIGURES_DIR
    plots.plot_tracking(run.metrics, fig_dir)
    plots.plot_loss(run.metrics, fig_dir)
    sections = [
        ("configuration", "Configuration", section_configuration(run)),
        ("corpus", "Corpus", section_corpus(store, run.config.corpus)),
        ("basis", "Basis functions: top associations", section_basis(basis, vocab, tokens, k)),
    ]
    result = ReportResult(path=report_path, step=step)
    assoc_html = "<p>No checkpoint after step 0: nothing learned to compare.</p>"
    have_positional = False
    if step is not None and model is not None:
        weights = model.weights()
        L = model.cfg.layers
        comps = analyses.comparisons(weights, basis, L)
        freq = analyses.frequent_ids(basis, cfg.heatmap_tokens)
        result.overlaps = analyses.overlap_summary(comps, freq, k)
        result.planted = analyses.planted_recovery(basis, vocab, planted_pairs, weights=weights, k=k)
        (fig_dir / "layer_readouts.png").unlink(missing_ok=True)
        if L > 1:
            plots.plot_layer_readouts([(f"step {step}", {"k": k, "planted": result.planted,
                                                          "overlap": result.overlaps}, "#1f77b4")], fig_dir)
        plots.plot_heatmaps([(f"learned {c.learned_label}", c.learned, f"predicted {c.predicted_label}",
                              c.predicted) for c in comps if c.layer in (None, 0)], freq, vocab, fig_dir)
        pred = closed_form(basis, step, run.config.lr, L)
        plots.plot_positional({l: weights[param_name("P", l)] for l in range(L)}, pred[param_name("P", 0)],
                              fig_dir)
        have_positional = True
        assoc_html = section_associations(comps, vocab, tokens, k, step, fig_dir, result.overlaps,
                                          result.planted if planted_pairs else [], len(freq),
                                          _step_note(run, step, cfg))
    sections += [
        ("tracking", "Tracking the theory during training", section_tracking(
            fig_dir, have_positional, any(r.get("val_loss") is not None for r in run.metrics))),
        ("horizon", "Validity horizon", horizon_html),
        ("intervention", "Causal intervention", intervention_html),
        ("associations", "Learned vs predicted associations", assoc_html),
    ]
    if (pre_dir / "index.json").is_file():
        from leadingterms.pretrained.report import pretrained_section

        sections.append(("pretrained", "Pretrained models (docs/theory.md §8)", pretrained_section(pre_dir)))
    cfgd = run.config
    subtitle = (f"{cfgd.layers}-layer attention-only transformer, lr {cfgd.lr:g}, batch {cfgd.batch_size}"
                f"×{cfgd.grad_accum}, {run.info.get('total_steps', '?')} steps on {run.info.get('N', '?')} "
                f"sequences (V = {run.info.get('V', '?')}, T = {run.info.get('T', '?')}); leading terms of "
                "Im et al. (ICLR 2026)")
    doc = page(f"leadingterms report — {run_path.name}", subtitle, sections)
    with atomic_path(result.path) as tmp:
        tmp.write_text(doc, encoding="utf-8")
        tmp.chmod(0o644)  # a document to open and share, not a private temp file
    return result
