"""Live tracking against the theory: metrics.jsonl rows, layer spread, validity horizon.

A metrics.jsonl row (one per logged step s, i.e. after s optimizer updates)::

    {"step": s, "epoch": e, "loss": l, "batch_loss": b|null, "val_loss": v|null,
     "closed_form":  {"W_O": {"cos": c, "rel": r}, "layers.0.W": {...}, ...},   docs/theory.md §3 at s
     "shadow":       {... same keys ...},                                       §5 (batches seen)
     "second_order": {"W_O": {...}, "layers.0.V": {...}, ...},                  §4 (W_O and V only)
     "layer_spread": {"V": x, "W": x, "P": x} | null}

- ``loss``: mean cross-entropy of the weights at step s over the training set (or its first
  ``eval_sequences`` sequences) -- the full-batch loss, comparable across batch sizes.
- ``batch_loss``: mean cross-entropy of the batch of step s at the weights before that update
  (what SGD minimised; null at step 0 -- before any update).
- ``val_loss``: over the store's val_tokens.npy (null when it has none).
- cos = Frobenius cosine, rel = ||learned - predicted||_F / ||learned||_F (docs/theory.md §6.1,
  :func:`leadingterms.metrics.compare_many`); a weight that is still exactly zero is omitted, and a
  non-finite number is written as null.
- ``layer_spread[kind]`` = max_l ||theta_l - mean_l theta||_F / ||mean_l theta||_F over the
  layers' weights of that kind (V, W, P); null for L = 1 or when the mean is zero. The theory
  predicts equal layers (docs/theory.md §3.4: spread O(eta^2) relative), so a growing spread marks where
  the layers start to specialise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from leadingterms.metrics import Prediction, compare_many
from leadingterms.theory import LAYER_KINDS, param_name, parse_param

if TYPE_CHECKING:
    from leadingterms.predict import Predictions

METRICS_FILE = "metrics.jsonl"
HORIZON_THRESHOLDS = (0.05, 0.20)
#: The weight kinds the second-order terms refine (docs/theory.md §4); W and P keep the closed form.
SECOND_ORDER_KINDS = ("W_O", "V")


def finite_or_none(x: float | None) -> float | None:
    """JSON has no NaN/inf: write them as null."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def clean_comparison(cmp: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | None]]:
    """predict.compare output -> JSON-safe {name: {"cos", "rel"}} (nan/inf -> null)."""
    return {name: {k: finite_or_none(v) for k, v in d.items()} for name, d in cmp.items()}


def layer_spread(weights: Mapping[str, torch.Tensor], layers: int) -> dict[str, float | None] | None:
    """{kind: max_l ||theta_l - mean||_F / ||mean||_F} for kind in V, W, P; None when L = 1."""
    if layers < 2:
        return None
    out: dict[str, float | None] = {}
    for kind in LAYER_KINDS:
        stack = torch.stack([weights[param_name(kind, l)].detach().double() for l in range(layers)])
        mean = stack.mean(0)
        denom = float(torch.linalg.vector_norm(mean))
        if denom == 0.0:
            out[kind] = None
            continue
        dev = max(float(torch.linalg.vector_norm(stack[l] - mean)) for l in range(layers))
        out[kind] = finite_or_none(dev / denom)
    return out


def predictions(kind: str, step: int, *, lr: float, preds: Predictions | None,
                shadow: Mapping[str, torch.Tensor] | None,
                like: Mapping[str, torch.Tensor]) -> dict[str, Prediction]:
    """The prediction of ``kind`` (closed_form, second_order or shadow) for the weights after ``step`` steps;
    ``preds`` holds the basis's fixed matrices (:class:`leadingterms.predict.Predictions`). The closed
    forms and second-order terms come as row-block builders (:data:`leadingterms.metrics.Prediction`).

    At step 0 nothing has moved: every prediction is zero (shaped like ``like``)."""
    if kind == "shadow":
        assert shadow is not None
        return dict(shadow)
    if step == 0:
        return {k: torch.zeros_like(v, dtype=torch.float64) for k, v in like.items()}
    assert preds is not None
    if kind == "second_order":
        return {k: v for k, v in preds.second_order_rows(step, lr).items()
                if parse_param(k)[0] in SECOND_ORDER_KINDS}
    return preds.closed_form_rows(step, lr)


def metrics_row(step: int, *, epoch: float, weights: Mapping[str, torch.Tensor], layers: int, lr: float,
                track: Iterable[str], preds: Predictions | None, shadow: Mapping[str, torch.Tensor] | None,
                loss: float, batch_loss: float | None, val_loss: float | None) -> dict[str, Any]:
    """One metrics.jsonl row (see the module docstring): losses, and the learned ``weights``
    compared with every tracked prediction (on the weights' device, each learned weight read once:
    :func:`leadingterms.metrics.compare_many`); untracked kinds are null."""
    learned = {k: v.detach() for k, v in weights.items()}
    row: dict[str, Any] = {"step": step, "epoch": epoch, "loss": finite_or_none(loss),
                           "batch_loss": finite_or_none(batch_loss), "val_loss": finite_or_none(val_loss)}
    tracked = [kind for kind in ("closed_form", "shadow", "second_order") if kind in set(track)]
    cmp = compare_many(learned, {kind: predictions(kind, step, lr=lr, preds=preds, shadow=shadow, like=learned)
                                 for kind in tracked})
    for kind in ("closed_form", "shadow", "second_order"):
        row[kind] = clean_comparison(cmp[kind]) if kind in cmp else None
    row["layer_spread"] = layer_spread(learned, layers)
    return row


Horizon = dict[str, dict[str, dict[str, "int | None"]]]


def validity_horizon(metrics: Iterable[Mapping[str, Any]],
                     thresholds: tuple[float, ...] = HORIZON_THRESHOLDS) -> Horizon:
    """First logged step at which rel exceeds each threshold, per prediction kind and weight.

    -> {kind: {weight: {"5%": step | None, "20%": step | None}}}; None = never within the run
    (at the logged steps). A rel that is null (non-finite) counts as exceeding.
    """
    out: Horizon = {}
    for row in metrics:
        for kind in ("closed_form", "shadow", "second_order"):
            for name, cmp in (row.get(kind) or {}).items():
                slot = out.setdefault(kind, {}).setdefault(name, {f"{t:.0%}": None for t in thresholds})
                rel = cmp.get("rel")
                for t in thresholds:
                    key = f"{t:.0%}"
                    if slot[key] is None and (rel is None or rel > t):
                        slot[key] = int(row["step"])
    return out


def append_metrics(run_dir: str | Path, row: Mapping[str, Any]) -> None:
    """Append one JSON line to RUN/metrics.jsonl (flushed)."""
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, allow_nan=False) + "\n")
        f.flush()


def _metric_lines(run_dir: str | Path, upto: int | None) -> list[tuple[str, dict[str, Any]]]:
    """(raw line, parsed row) of RUN/metrics.jsonl with step <= upto; a torn line is skipped."""
    p = Path(run_dir) / METRICS_FILE
    if not p.is_file():
        return []
    out = []
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row and (upto is None or row["step"] <= upto):
            out.append((line, row))
    return out


def read_metrics(run_dir: str | Path, *, upto: int | None = None) -> list[dict[str, Any]]:
    """Rows of RUN/metrics.jsonl (``upto``: only rows with step <= upto)."""
    return [row for _, row in _metric_lines(run_dir, upto)]


def truncate_metrics(run_dir: str | Path, upto: int) -> list[dict[str, Any]]:
    """Rewrite RUN/metrics.jsonl atomically keeping the lines with step <= ``upto`` (byte for
    byte; a torn last line from a killed process is dropped) -> the kept rows."""
    from leadingterms.persist import atomic_path

    kept = _metric_lines(run_dir, upto)
    with atomic_path(Path(run_dir) / METRICS_FILE) as tmp:
        tmp.write_text("".join(line + "\n" for line, _ in kept), encoding="utf-8")
    return [row for _, row in kept]
