"""``compare-pretrained``: similarities (docs/theory.md §8) between a pretrained LM and the corpus statistics.

For every model/revision (:mod:`~leadingterms.pretrained.loading`), the K most frequent corpus
tokens under the model's own tokenizer (:mod:`~leadingterms.pretrained.stats`) are fed alone
through the model (:mod:`~leadingterms.pretrained.features`) and compared per layer
(:mod:`~leadingterms.pretrained.similarity`):

- ``resid_pre``/``resid_mid``/``resid_post``: Gram similarity of the row-centred single-token
  residual states (K, d) with the L2-normalised rows of Φ̄ᵀB̄ᵀ (the value prediction);
- ``qk_mean``/``qk_heads``: Gram similarity of the (K, K) query-key scores (head-averaged / per
  head) with the L2-normalised rows of Q̄ (the attention prediction).

Model-level comparisons with B̄ (no layer; ``model_level`` in similarity.json):

- ``direct_gram``/``direct_cos``: the direct path W_U·final_norm(embedding) restricted to the
  K tokens ("virtual weights", the analogue of W_O ≈ sηB̄): Gram similarity with the
  L2-normalised rows of B̄, and the Frobenius cosine of the row-centred matrix with row-centred
  B̄ (logits are defined up to a constant per row; B̄'s rows weight token a by its frequency π_a);
- ``logits_gram``/``logits_cos``: the same for the full model's one-token logits.

Outputs: ``OUT/basis.safetensors`` + ``basis.json`` (the statistics of the first tokenizer; any
other tokenizer gets ``basis-<fingerprint>.*``), ``OUT/<label>/similarity.json`` per
model/revision, ``OUT/index.json``, the figures (:mod:`~leadingterms.pretrained.plots`) and the page
``OUT/report.html`` (:mod:`~leadingterms.pretrained.report`).
"""

from __future__ import annotations

import gc
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from leadingterms.budget import check_memory
from leadingterms.config import check_config, option
from leadingterms.corpus.sources import SourceConfig
from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import frobenius_cosine
from leadingterms.persist import read_json, write_json
from leadingterms.pretrained.features import SingleTokenFeatures, extract_features
from leadingterms.pretrained.loading import LoadedModel, load_model, resolve_refs, step_of
from leadingterms.pretrained.similarity import (
    centred_gram,
    double_centre,
    gram_similarity,
    row_centre,
    target_gram,
)
from leadingterms.pretrained.stats import TopKStats, corpus_stats, save_stats, tokenizer_fingerprint
from leadingterms.progress import bar
from leadingterms.validate import device_spec, out_folder, positive_int, refuse_foreign, resolve_device

RESID_KEYS = ("resid_pre", "resid_mid", "resid_post")


def default_cache_dir() -> Path:
    """``$LEADINGTERMS_CACHE`` or ``~/.cache/leadingterms``, sub-folder ``pretrained``."""
    root = os.environ.get("LEADINGTERMS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "leadingterms")
    return Path(root) / "pretrained"


_MODELS = "models"


@dataclass(kw_only=True)
class CompareConfig(SourceConfig):
    """``leadingterms compare-pretrained``: models (and revisions) against the statistics of a corpus
    (:class:`SourceConfig`) under each model's own tokenizer."""

    models: list[str] = option(help="hub name or local folder (repeat for several)", flag="--model",
                               metavar="NAME_OR_PATH", repeat=True, group=_MODELS)
    revisions: list[str] = option(help="revision (hub branch/tag/commit, or a sub-folder of a local model); "
                                  "repeatable", flag="--revision", metavar="R", repeat=True, group=_MODELS,
                                  exclusive="revisions", default_factory=list)
    revisions_spec: str | None = option(None, help="pythia (Pythia's 154 checkpoints), pythia:FIRST-LAST (a step "
                                        "range of them) or local (every DIR/step<N> folder)", flag="--revisions",
                                        metavar="SPEC", group=_MODELS, exclusive="revisions")
    trust_remote_code: bool = option(False, help="allow models with custom code (only for models you trust)",
                                     group=_MODELS)
    seq_len: int = option(128, help="documents with >= T+1 tokens, truncated to T+1", metavar="T",
                          check=positive_int)
    top_k: int = option(help="compare over the K most frequent tokens", metavar="K", check=positive_int)
    cache_dir: str | None = option(None, help="statistics cache (default $LEADINGTERMS_CACHE/pretrained, else "
                                   "~/.cache/leadingterms/pretrained)", metavar="DIR")
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto", check=device_spec)
    batch_size: int = option(256, help="tokens per forward pass", metavar="B", check=positive_int)
    plots: bool = option(True, help="skip the figures", flag="--no-plots", negate=True)
    out: str = option(help="output folder to create", metavar="DIR")
    force: bool = option(False, help="replace a comparison in DIR made with other settings")


@dataclass(frozen=True)
class Targets:
    """Gram matrices (K, K) of the L2-normalised rows of the predictions, and row-centred B̄."""

    value: Tensor  # Φ̄ᵀB̄ᵀ
    attention: Tensor  # Q̄
    bigram: Tensor  # B̄
    B_centred: Tensor  # B̄ with rows centred over the K next tokens

    @classmethod
    def from_stats(cls, stats: TopKStats) -> Targets:
        return cls(target_gram(stats.value), target_gram(stats.Q_bar), target_gram(stats.B_bar),
                   row_centre(stats.B_bar))


def null_permutation(K: int, seed: int = 0) -> Tensor:
    """The fixed token permutation of the null baseline."""
    return torch.randperm(K, generator=torch.Generator().manual_seed(seed))


def _sim(G: Tensor, target: Tensor, extra: dict[str, dict[str, float]], key: str, perm: Tensor) -> float:
    """gram_similarity(G, target); records in ``extra`` the token-permuted null and the token-centred
    (CKA) variant."""
    extra["null"][key] = gram_similarity(G[perm][:, perm], target)
    extra["token_centred"][key] = gram_similarity(double_centre(G), double_centre(target))
    return gram_similarity(G, target)


def layer_similarities(feats: SingleTokenFeatures, targets: Targets) -> list[dict[str, Any]]:
    """One record per layer: resid_pre/mid/post, qk_mean and qk_heads (docs/theory.md §8).

    ``null``: the same similarities after permuting the model's tokens (rows and columns of its
    Gram, one fixed permutation): what a Gram with the same spectrum and diagonal but no token
    correspondence scores — Gram similarities of unrelated matrices are far from 0.
    ``token_centred``: both Grams double-centred (also over tokens) before the cosine, i.e. linear
    CKA; it ignores the direction shared by all tokens, which dominates the raw number.
    """
    rows = []
    perm = null_permutation(int(targets.value.shape[0]))
    for l in range(feats.L):
        row: dict[str, Any] = {"layer": l}
        extra: dict[str, dict[str, float]] = {"null": {}, "token_centred": {}}
        for key in RESID_KEYS:
            row[key] = _sim(centred_gram(getattr(feats, key)[l]), targets.value, extra, key, perm)
        q, k = feats.queries[l], feats.keys[l]  # (H, K, d_head)
        # head average: mean_h q_h k_hᵀ = [q_1 … q_H][k_1 … k_H]ᵀ / H (the 1/(H·sqrt(d_head)) scale cancels)
        q_cat = q.permute(1, 0, 2).reshape(q.shape[1], -1)
        k_cat = k.permute(1, 0, 2).reshape(k.shape[1], -1)
        row["qk_mean"] = _sim(centred_gram(q_cat, k_cat), targets.attention, extra, "qk_mean", perm)
        row["qk_heads"] = [gram_similarity(centred_gram(q[h], k[h]), targets.attention) for h in range(feats.H)]
        row.update(extra)
        rows.append(row)
    return rows


def model_level_similarities(feats: SingleTokenFeatures, targets: Targets) -> dict[str, float]:
    """Direct path (virtual weights) and one-token logits against B̄ (``*_null``: tokens permuted)."""
    out: dict[str, float] = {}
    perm = null_permutation(int(targets.bigram.shape[0]))
    for name, M in (("direct", feats.direct), ("logits", feats.logits)):
        extra: dict[str, dict[str, float]] = {"null": {}, "token_centred": {}}
        out[f"{name}_gram"] = _sim(centred_gram(M), targets.bigram, extra, "gram", perm)
        out[f"{name}_cos"] = frobenius_cosine(row_centre(M), targets.B_centred)
        out[f"{name}_gram_null"] = extra["null"]["gram"]
        out[f"{name}_gram_token_centred"] = extra["token_centred"]["gram"]
        out[f"{name}_cos_null"] = frobenius_cosine(row_centre(M[perm][:, perm]), targets.B_centred)
    return out


def features_memory_bytes(config: Any, K: int, batch_size: int) -> int:
    """Single-token features (5 × L × K × d float32), per-batch logits, and ~8 (K, K) float64 Grams."""
    L = int(config.num_hidden_layers)
    d = int(config.hidden_size)
    V = int(config.vocab_size)
    return 5 * L * K * d * 4 + 2 * min(batch_size, K) * V * 4 + 8 * K * K * 8


def model_memory_bytes(folder: Path, config: Any) -> int:
    """float32 size of the weights in ``folder`` (files stored in 16 bits count twice)."""
    size = sum(p.stat().st_size for p in folder.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    attr = "dtype" if hasattr(config, "dtype") else "torch_dtype"
    dtype = str(getattr(config, attr, None))
    return size * (2 if ("16" in dtype) else 1)


def compare_one(loaded: LoadedModel, stats: TopKStats, targets: Targets, *, device: torch.device,
                batch_size: int) -> dict[str, Any]:
    """The similarity.json record of one loaded model against ``stats``."""
    n_model = int(loaded.model.get_input_embeddings().weight.shape[0])
    if max(stats.token_ids) >= n_model:
        raise LeadingTermsError(
            f"token id {max(stats.token_ids)} of the tokenizer is outside the model's embedding ({n_model} rows)"
        )
    feats = extract_features(loaded.model, loaded.spec, stats.token_ids, batch_size=batch_size, device=device)
    info = dict(loaded.info)
    return {
        "model": info.pop("model"),
        "revision": info.pop("revision"),
        "commit": info.pop("commit"),
        "label": loaded.ref.label,
        "step": step_of(loaded.ref.revision or "") if loaded.ref.revision else step_of(loaded.ref.label),
        "K": stats.K,
        "n_layers": feats.L,
        "n_heads": feats.H,
        "layers": layer_similarities(feats, targets),
        "model_level": model_level_similarities(feats, targets),
        "load": info,
    }


def run_compare(cfg: CompareConfig) -> CompareResult:
    """Run every model/revision; write OUT as described in the module docstring; return the index."""
    from leadingterms.locks import new_output

    check_config(cfg)
    device = resolve_device(cfg.device)
    refs = resolve_refs(cfg.models, cfg.revisions, cfg.revisions_spec)
    out = Path(cfg.out)
    _claim(out, cfg)  # again once the lock is held
    with new_output(out, what="comparison folder", claim=lambda: _claim(out, cfg)):
        result = _run(cfg, refs, out, device)
        _remove_stale(out, {e["label"] for e in result.index["entries"]})
    return result


#: Settings that do not change what a comparison holds (left out of the overwrite check).
_NOT_CONTENT = ("out", "force", "device", "batch_size", "plots", "cache_dir")


def _claim(out: Path, cfg: CompareConfig) -> None:
    """The one overwrite policy: OUT may be new, empty, a comparison stopped part-way (no index.json), or a
    comparison of the same settings; another comparison (or other files) is replaced only with --force."""
    out_folder(out)
    if cfg.force or not out.is_dir():
        return
    new = {k: v for k, v in asdict(cfg).items() if k not in _NOT_CONTENT}
    if (out / "index.json").is_file():
        try:
            old_cfg = read_json(out / "index.json").get("config")
        except (LeadingTermsError, AttributeError):
            old_cfg = None
        old = {k: v for k, v in (old_cfg or {}).items() if k not in _NOT_CONTENT}
        diff = next((k for k in new if old.get(k) != new[k]), None)
        if diff is not None:
            raise LeadingTermsError(f"--out {out} holds a comparison made with other settings ({diff} "
                                    f"{old.get(diff)!r} there, {new[diff]!r} now); pass --force to replace it, or "
                                    "choose another --out")
        return
    refuse_foreign(out, "a comparison", _own)


def _own(p: Path) -> bool:
    """Whether ``p`` is what a comparison writes before its index.json (a run stopped part-way): the basis,
    a model's folder (similarity.json), the figures and the page."""
    if p.is_dir():
        return (p / "similarity.json").is_file()
    return p.name.startswith(("basis", "similarity_")) or p.name == "report.html"


def _remove_stale(out: Path, labels: set[str]) -> None:
    """Remove the per-model folders of an earlier comparison that this one did not make."""
    import shutil

    for p in out.iterdir():
        if p.is_dir() and p.name not in labels and (p / "similarity.json").is_file():
            shutil.rmtree(p)


def _run(cfg: CompareConfig, refs: list[Any], out: Path, device: Any) -> CompareResult:
    """Every model/revision of ``refs`` into ``out`` (holding its lock)."""
    cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    by_fp: dict[str, tuple[TopKStats, Targets, str]] = {}
    entries: list[dict[str, Any]] = []

    def before_weights(folder: Path, config: Any) -> None:
        need = model_memory_bytes(folder, config) + features_memory_bytes(config, cfg.top_k, cfg.batch_size)
        check_memory(need, f"comparing {folder.name} at K={cfg.top_k}",
                     "lower --top-k (Grams grow as K², states as K·d·layers) or use a smaller model")

    for ref in bar(refs, total=len(refs), desc="models", unit="model"):
        loaded = load_model(ref, device=device, trust_remote_code=cfg.trust_remote_code,
                            before_weights=before_weights)
        fp = tokenizer_fingerprint(loaded.tokenizer)
        if fp not in by_fp:
            stats = corpus_stats(loaded.folder, loaded.tokenizer, cfg, cfg.seq_len, cfg.top_k, cache)
            stem = "basis" if not by_fp else f"basis-{fp}"
            save_stats(out, stats, stem)
            by_fp[fp] = (stats, Targets.from_stats(stats), stem)
        stats, targets, stem = by_fp[fp]
        record = compare_one(loaded, stats, targets, device=device, batch_size=cfg.batch_size)
        record["basis"] = f"{stem}.safetensors"
        write_json(out / ref.label / "similarity.json", record)
        entries.append({k: record[k] for k in ("label", "model", "revision", "commit", "step", "basis")})
        del loaded
        gc.collect()

    index = {"config": asdict(cfg), "entries": entries}
    write_json(out / "index.json", index)
    figures: list[Path] = []
    if cfg.plots:
        from leadingterms.pretrained.plots import plot_all

        figures = plot_all(out)
    from leadingterms.pretrained.report import write_pretrained_report

    return CompareResult(out, index, figures, report=write_pretrained_report(out))


@dataclass
class CompareResult:
    """The output folder, its index.json record and the figures drawn."""

    path: Path
    index: dict[str, Any]
    figures: list[Path] = field(default_factory=list)
    report: Path | None = None  # OUT/report.html
    notes: list[str] = field(default_factory=list)


#: Model-level similarities with B̄ (docs/theory.md (8.7), (8.8)): Gram ones have a token-centred variant.
MODEL_LEVEL_KEYS = ("direct_gram", "logits_gram", "direct_cos", "logits_cos")
#: The three variants every score is shown with: (8.3) raw, (8.5) null, (8.6) token-centred (linear CKA).
VARIANTS = ("score", "null", "cka")


def score_variants(rec: dict[str, Any], layer: int | None = None) -> dict[str, dict[str, float | None]]:
    """Every similarity of a similarity.json record with its null and token-centred (CKA) variant:
    {metric: {"score", "null", "cka"}}. ``layer`` None: the per-layer metrics averaged over the layers,
    and the model-level ones; else that layer's metrics only. A cosine of row-centred matrices
    (``*_cos``) has no token-centred variant (None)."""
    rows = rec["layers"] if layer is None else [r for r in rec["layers"] if r["layer"] == layer]
    mean = lambda vals: float(sum(vals) / len(vals)) if vals else None  # noqa: E731
    out: dict[str, dict[str, float | None]] = {}
    for m in (*RESID_KEYS, "qk_mean"):
        out[m] = {"score": mean([r[m] for r in rows]),
                  "null": mean([r["null"][m] for r in rows if "null" in r]),
                  "cka": mean([r["token_centred"][m] for r in rows if "token_centred" in r])}
    if layer is None:
        ml = rec["model_level"]
        for m in MODEL_LEVEL_KEYS:
            out[m] = {"score": ml.get(m), "null": ml.get(f"{m}_null"), "cka": ml.get(f"{m}_token_centred")}
    return out


def summary_lines(result: CompareResult) -> list[str]:
    """A legend line, then one line per model/revision: every similarity as score/null/CKA (layer means)."""
    from leadingterms.persist import read_json

    def three(v: dict[str, float | None]) -> str:
        return "/".join("–" if v[k] is None else f"{v[k]:.3f}" for k in VARIANTS)

    lines = ["each similarity as score/null/CKA: score (8.3), its token-permuted null (8.5) -- a score near its "
             "null carries no token-level agreement -- and the token-centred variant (8.6, linear CKA); per-layer "
             "scores are means over the layers"]
    for e in result.index["entries"]:
        rec = read_json(result.path / e["label"] / "similarity.json")
        scores = score_variants(rec)
        lines.append(f"{e['label']}: " + ", ".join(f"{k} {three(v)}" for k, v in scores.items()))
    return lines
