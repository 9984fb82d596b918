"""The pretrained comparison as HTML: its own page (OUT/report.html, written by ``compare-pretrained``) and
a section of a run report (``report --pretrained DIR``).

Reads ``OUT/index.json`` and the ``similarity.json`` of each checkpoint and renders through
:mod:`leadingterms.report.html` (the project's one HTML builder). Every table shows each score next to
its token-permuted null (docs/theory.md (8.5)) and its token-centred variant ((8.6), linear CKA).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from leadingterms.pretrained.compare import MODEL_LEVEL_KEYS, RESID_KEYS, VARIANTS, score_variants
from leadingterms.pretrained.plots import FIGURES, load_results, plot_all
from leadingterms.report.html import esc, image, page, table

REPORT_FILE = "report.html"
#: column labels of the three variants
_VARIANT_LABELS = {"score": "score", "null": "null", "cka": "CKA"}
_METRIC_NOTES = {
    "resid_pre": "residual stream entering the layer vs Φ̄ᵀB̄ᵀ", "resid_mid": "after attention vs Φ̄ᵀB̄ᵀ",
    "resid_post": "after the block vs Φ̄ᵀB̄ᵀ", "qk_mean": "query-key scores (head mean) vs Q̄",
    "direct_gram": "direct path W_U·LN(embedding) vs B̄, Gram", "logits_gram": "one-token logits vs B̄, Gram",
    "direct_cos": "direct path vs B̄, cosine of row-centred matrices",
    "logits_cos": "one-token logits vs B̄, cosine of row-centred matrices",
}
_FIGURE_CAPTIONS = {
    "similarity_heatmap": "per layer (rows) and checkpoint (columns): the score, its distance from the null, and "
                          "the token-centred (CKA) variant",
    "similarity_lines": "across checkpoints, one line per layer (solid: score; dashed: null; dotted: CKA), and "
                        "the model-level comparisons with B̄",
    "similarity_heads": "per-head query-key similarity with Q̄ (rows: layer and head, columns: checkpoints)",
}


def scores_table(rows: Sequence[tuple[str, dict[str, dict[str, float | None]]]], first: str,
                 metrics: Sequence[str] | None = None) -> str:
    """One row per (label, :func:`score_variants` output); each metric (default: all) as three columns
    score | null | CKA under a grouped header."""
    metrics = list(metrics if metrics is not None else (rows[0][1] if rows else []))
    groups = [("", 1), *((m, len(VARIANTS)) for m in metrics)]
    header = [first, *(_VARIANT_LABELS[v] for _ in metrics for v in VARIANTS)]
    body = [[label, *(scores[m][v] for m in metrics for v in VARIANTS)] for label, scores in rows]
    return table(header, body, groups=groups)


def _intro(K: Any) -> str:
    notes = "".join(f"<li><code>{esc(m)}</code>: {esc(n)}</li>" for m, n in _METRIC_NOTES.items())
    return (f"<p>Gram similarity (docs/theory.md (8.3): the Frobenius cosine of two K×K Gram matrices, K = "
            f"{esc(K)} most frequent corpus tokens) between the model's single-token features and the "
            "predictions. Each score is shown with its <b>null</b> (8.5), the same similarity after permuting the "
            "model's tokens (a score near its null carries no token-level agreement: Gram similarities of "
            "unrelated matrices are far from 0), and its <b>token-centred</b> variant (8.6, linear CKA), which "
            f"removes the direction shared by all tokens.</p><ul class=\"note\">{notes}</ul>")


def mean_tables(records: Sequence[dict[str, Any]]) -> str:
    """The layer means of the per-layer similarities, then the model-level ones: one row per checkpoint."""
    rows = [(str(r["label"]), score_variants(r)) for r in records]
    return ("<h3>Per-layer similarities, mean over the layers</h3>"
            + scores_table(rows, "checkpoint", (*RESID_KEYS, "qk_mean"))
            + "<h3>Model level, against B̄</h3>" + scores_table(rows, "checkpoint", MODEL_LEVEL_KEYS))


def pretrained_section(out_dir: str | Path) -> str:
    """Body HTML for a run report: the layer-mean table (score, null, CKA) and the figures (drawn if missing)."""
    out = Path(out_dir)
    records = load_results(out)
    if not all((out / f"{f}.png").is_file() for f in FIGURES):
        plot_all(out)
    K = records[0]["K"] if records else 0
    figures = "".join(image(out / f"{f}.png", _FIGURE_CAPTIONS[f]) for f in FIGURES)
    return _intro(K) + mean_tables(records) + figures


def _setup(index: dict[str, Any], records: Sequence[dict[str, Any]]) -> str:
    cfg = index.get("config") or {}
    source = next(((k, v) for k in ("text", "jsonl", "dataset", "load_from_disk") if (v := cfg.get(k))), None)
    items = [("corpus", f"{source[0]} {source[1]}" if source else "the synthetic stories"),
             ("sequence length T", cfg.get("seq_len")), ("top-K tokens", cfg.get("top_k"))]
    rows = [(r["label"], r["model"], r.get("revision") or "–", str(r.get("commit") or "local")[:12],
             "–" if r.get("step") is None else r["step"], r["n_layers"], r["n_heads"]) for r in records]
    return (table(("setting", "value"), [(k, "–" if v is None else str(v)) for k, v in items])
            + table(("checkpoint", "model", "revision", "commit", "step", "layers", "heads"), rows))


def _per_layer(records: Sequence[dict[str, Any]], limit: int = 8) -> str:
    shown = records if len(records) <= limit else [records[0], records[-1]]
    out = "" if len(shown) == len(records) else (
        f'<p class="note">{len(records)} checkpoints: the first and the last are shown; every value is in their '
        "similarity.json.</p>")
    for r in shown:
        rows = [(str(row["layer"]), score_variants(r, row["layer"])) for row in r["layers"]]
        out += f"<h3>{esc(r['label'])}</h3>" + scores_table(rows, "layer")
    return out


def write_pretrained_report(out_dir: str | Path) -> Path:
    """OUT/report.html: a self-contained page about a ``compare-pretrained`` folder, with the figures it has
    (none after ``--no-plots``)."""
    from leadingterms.persist import atomic_path, read_json

    out = Path(out_dir)
    index = read_json(out / "index.json", what="compare-pretrained index")
    records = load_results(out)
    K = records[0]["K"] if records else 0
    figures = [f for f in FIGURES if (out / f"{f}.png").is_file()]
    sections = [
        ("setup", "Models and corpus", _setup(index, records)),
        ("scores", "Similarities with their nulls and CKA variants", _intro(K) + mean_tables(records)),
        ("layers", "Per layer", _per_layer(records)),
        ("figures", "Figures", "".join(image(out / f"{f}.png", _FIGURE_CAPTIONS[f]) for f in figures)
         or "<p>No figures (compare-pretrained ran with --no-plots).</p>"),
    ]
    models = sorted({str(r["model"]) for r in records})
    doc = page("leadingterms compare-pretrained", f"{len(records)} checkpoints of {', '.join(models)} against "
               "the leading-term predictions (docs/theory.md §8)", sections)
    path = out / REPORT_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(doc, encoding="utf-8")
        tmp.chmod(0o644)
    return path
