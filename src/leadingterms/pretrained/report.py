"""The pretrained comparison as HTML: a section of the run report (``report --pretrained DIR``).

Reads ``OUT/index.json`` and ``OUT/<label>/similarity.json`` of ``compare-pretrained`` and renders
through :mod:`leadingterms.report.html` (the project's one HTML builder).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leadingterms.pretrained.plots import FIGURES, METRICS, load_results, plot_all
from leadingterms.report.html import esc, image, table


def pretrained_section(out_dir: str | Path) -> str:
    """Body HTML: a table of layer-averaged similarities and the figures (drawn first if missing)."""
    out = Path(out_dir)
    records = load_results(out)
    if not all((out / f"{f}.png").is_file() for f in FIGURES):
        plot_all(out)
    header = ("checkpoint", "commit", *METRICS, "null qk_mean", "CKA resid_post", "CKA qk_mean", "direct_gram",
              "null direct_gram")
    rows = []
    for r in records:
        means = [float(np.mean([row[m] for row in r["layers"]])) for m in METRICS]
        null_qk = float(np.mean([row["null"]["qk_mean"] for row in r["layers"]]))
        cka = [float(np.mean([row["token_centred"][m] for row in r["layers"]])) for m in ("resid_post", "qk_mean")]
        ml = r["model_level"]
        rows.append((str(r["label"]), str(r.get("commit") or "local")[:12], *means, null_qk, *cka,
                     float(ml["direct_gram"]), float(ml["direct_gram_null"])))
    K = records[0]["K"] if records else 0
    return (f"<p>Gram similarity (Frobenius cosine of K×K Gram matrices, K = {esc(K)}) between single-token "
            "residual streams and the rows of Φ̄ᵀB̄ᵀ, and between query-key scores and Q̄; averaged over layers. "
            "The null column permutes the model's tokens: values near it carry no token-level agreement; "
            "CKA columns centre both Grams over tokens as well (linear CKA).</p>"
            + table(header, rows) + "".join(image(out / f"{f}.png", f) for f in FIGURES))
