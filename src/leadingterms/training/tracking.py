"""Live tracking against the theory: metrics.jsonl rows, layer spread, validity horizons (docs/theory.md §6.3).

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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from leadingterms.metrics import Prediction, compare_many, row_blocks, rows_of
from leadingterms.theory import LAYER_KINDS, param_name, parse_param
from leadingterms.training.config import TRACK_KINDS

if TYPE_CHECKING:
    from leadingterms.predict import Predictions
    from leadingterms.training.runs import Run

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
    for kind in LAYER_KINDS:  # block by block of rows in float64: no (V, V) float64 copy, whatever L
        ws = [weights[param_name(kind, l)].detach() for l in range(layers)]
        sq = torch.zeros(layers + 1, dtype=torch.float64, device=ws[0].device)  # ||mean||², ||theta_l − mean||²
        for i, j in row_blocks(ws[0]):
            block = torch.stack([rows_of(w, i, j).to(torch.float64) for w in ws])  # (L, rows, V)
            mean = block.mean(0)
            sq[0] += mean.square().sum()
            sq[1:] += (block - mean).square().reshape(layers, -1).sum(1)
        mean_sq, *dev_sq = sq.tolist()
        out[kind] = None if mean_sq == 0.0 else finite_or_none(math.sqrt(max(dev_sq) / mean_sq))
    return out


def predictions(kind: str, step: int, *, lr: float, preds: Predictions | None,
                shadow: Mapping[str, Prediction] | None,
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
                track: Iterable[str], preds: Predictions | None, shadow: Mapping[str, Prediction] | None,
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

HORIZON_DEFINITION = (
    "horizon(t) = the first logged step after which rel = ||learned - predicted||_F / ||learned||_F stays "
    "above t to the end of the run (a sustained crossing, docs/theory.md (6.5)); a noisy excursion that "
    "comes back below t does not count; null = the error was at or below t at the last logged step "
    "(the prediction held to the end). s_eta = step * lr, the expansion parameter (docs/theory.md (3.9))"
)


def threshold_key(t: float) -> str:
    """0.05 -> "5%" (the key of a threshold in every horizon record)."""
    return f"{t:.0%}"


def sustained_crossing(errors: Iterable[tuple[int, float | None]], threshold: float) -> int | None:
    """docs/theory.md (6.5): the first logged step s_k with e(s_j) > threshold for every j >= k.

    ``errors``: (step, rel) in ascending step order, rel None for a non-finite value (counts as
    above any threshold). None when the last error is at or below the threshold (or there is none).
    """
    crossing: int | None = None
    for step, rel in errors:
        above = rel is None or not math.isfinite(rel) or rel > threshold
        if not above:
            crossing = None
        elif crossing is None:
            crossing = int(step)
    return crossing


def error_series(metrics: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[tuple[int, float | None]]]]:
    """{prediction kind: {weight: [(step, rel), ...]}} from metrics rows (ascending step); a weight is
    listed at the steps where it was logged (a still-zero learned weight is not, docs/theory.md §6.1)."""
    out: dict[str, dict[str, list[tuple[int, float | None]]]] = {}
    for row in sorted(metrics, key=lambda r: int(r["step"])):
        for kind in TRACK_KINDS:
            for name, cmp in (row.get(kind) or {}).items():
                rel = cmp.get("rel") if isinstance(cmp, Mapping) else None
                out.setdefault(kind, {}).setdefault(name, []).append((int(row["step"]), rel))
    return out


def validity_horizon(metrics: Iterable[Mapping[str, Any]],
                     thresholds: tuple[float, ...] = HORIZON_THRESHOLDS) -> Horizon:
    """The sustained crossing (docs/theory.md (6.5)) of each threshold, per prediction kind and weight.

    -> {kind: {weight: {"5%": step | None, "20%": step | None}}}; None = the prediction held to the
    end of the run (at the logged steps). A rel that is null (non-finite) counts as exceeding.
    """
    return {kind: {name: {threshold_key(t): sustained_crossing(series, t) for t in thresholds}
                   for name, series in by_name.items()}
            for kind, by_name in error_series(metrics).items()}


def is_full_batch(N: int, batch_size: int, grad_accum: int) -> bool:
    """Every optimizer step uses all N sequences (B·K >= N): full-batch GD, where the closed form applies."""
    return int(batch_size) * int(grad_accum) >= int(N)


def headline_prediction(full_batch: bool, tracked: Iterable[str], *, N: int | None = None,
                        step_size: int | None = None) -> tuple[str | None, str]:
    """Which prediction's horizon answers "how long does the theory hold" for this run, and why, in plain
    words (docs/theory.md §6.3): the closed form under full-batch GD, the shadow under minibatch SGD.
    Falls back to the other one when the preferred prediction was not tracked; (None, why) when neither was."""
    tracked = set(tracked)
    sizes = f" ({step_size} of N = {N} sequences per step)" if N is not None and step_size is not None else ""
    if full_batch:
        want = "closed_form"
        why = (f"full-batch GD{sizes}: every step uses the whole corpus, so the closed form (docs/theory.md §3) "
               "is the theory's own leading term and its error measures where the small-step expansion breaks "
               "down (the shadow coincides with it)")
    else:
        want = "shadow"
        why = (f"minibatch SGD{sizes}: the closed form uses full-corpus statistics, so against SGD weights its "
               "error measures batch noise from the first steps at any learning rate; the shadow "
               "(docs/theory.md §5) is the same prediction along the batches actually drawn, so its error "
               "measures where the expansion breaks down")
    if want in tracked:
        return want, why
    other = "shadow" if want == "closed_form" else "closed_form"
    if other in tracked:
        return other, f"{why}; but {want} was not tracked, so {other} is shown instead"
    return None, f"{why}; but neither the closed form nor the shadow was tracked"


def horizon_summary(metrics: Sequence[Mapping[str, Any]], *, lr: float, N: int, batch_size: int,
                    grad_accum: int, tracked: Iterable[str],
                    thresholds: tuple[float, ...] = HORIZON_THRESHOLDS) -> dict[str, Any]:
    """The ``horizon`` record of summary.json (also computed by readers of older runs).

    ``by_prediction[kind][weight][t]`` = {"step": s, "s_eta": s·η} or None (held to the end);
    ``by_weight_kind[kind][W][t]`` = the earliest over the layers of weight kind W (W_O, V, W, P);
    ``headline``: the prediction kind that answers the question for this run, ``why``: the reason.
    """
    full = is_full_batch(N, batch_size, grad_accum)
    headline, why = headline_prediction(full, tracked, N=N, step_size=min(batch_size * grad_accum, N))
    steps = validity_horizon(metrics, thresholds)
    by_pred = {kind: {name: {t: (None if s is None else {"step": s, "s_eta": s * float(lr)})
                             for t, s in hz.items()} for name, hz in by_name.items()}
               for kind, by_name in steps.items()}
    return {
        "definition": HORIZON_DEFINITION,
        "thresholds": [threshold_key(t) for t in thresholds],
        "lr": float(lr),
        "full_batch": full,
        "regime": "full-batch GD" if full else "minibatch SGD",
        "headline": headline,
        "why": why,
        "last_step": max((int(r["step"]) for r in metrics), default=0),
        "by_prediction": by_pred,
        "by_weight_kind": {kind: earliest_by_weight_kind(by_name) for kind, by_name in by_pred.items()},
    }


def run_horizon(run: Run) -> dict[str, Any]:
    """:func:`horizon_summary` of a loaded run, from its metrics.jsonl: the same record as its summary.json's
    ``horizon``, also for runs written before that record existed and for unfinished runs."""
    cfg = run.config
    return horizon_summary(run.metrics, lr=cfg.lr, N=int(run.info.get("N") or 0), batch_size=cfg.batch_size,
                           grad_accum=cfg.grad_accum, tracked=cfg.track)


def earliest_by_weight_kind(by_name: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{weight: {t: crossing}} -> {W_O|W|V|P: {t: the earliest crossing over the layers, or None}};
    a crossing is anything ordered by its ``step`` ({"step", "s_eta"}) or a step number."""
    out: dict[str, dict[str, Any]] = {}
    for name, hz in by_name.items():
        try:
            kind = parse_param(name)[0]
        except ValueError:
            continue
        slot = out.setdefault(kind, {})
        for t, c in hz.items():
            if c is None:
                slot.setdefault(t, None)
                continue
            old = slot.get(t)
            step = c["step"] if isinstance(c, Mapping) else c
            if old is None or step < (old["step"] if isinstance(old, Mapping) else old):
                slot[t] = c
    order = {k: i for i, k in enumerate(("W_O", *LAYER_KINDS))}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], 99)))


def format_crossing(c: Mapping[str, Any] | None) -> str:
    """{"step": 110, "s_eta": 22.0} -> "s=110 (sη=22)"; None -> "held"."""
    if c is None:
        return "held"
    return f"s={c['step']} (sη={c['s_eta']:.3g})"


def format_horizons(by_weight_kind: Mapping[str, Mapping[str, Any]]) -> str:
    """One line, thresholds separated by "/": "W_O s=40/held (sη=8/–); V s=12/30 (sη=2.4/6); W held" ("held":
    not crossed by the end of the run)."""
    def part(hz: Mapping[str, Any], key: str, held: str) -> str:
        return "/".join(held if c is None else f"{c[key]:.3g}" for c in hz.values())

    return "; ".join(f"{kind} held" if all(c is None for c in hz.values()) else
                     f"{kind} s={part(hz, 'step', 'held')} (sη={part(hz, 's_eta', '–')})"
                     for kind, hz in by_weight_kind.items())


#: Short names of the prediction kinds (keys of a metrics row) in console lines and tables.
PREDICTION_NAMES = {"closed_form": "closed form (§3)", "shadow": "shadow (§5)",
                    "second_order": "second order (§4)"}


def horizon_lines(h: Mapping[str, Any], *, why: bool = True) -> list[str]:
    """Console lines of a :func:`horizon_summary` record: the headline prediction's horizons first (with the
    reason, or just the regime when ``why`` is False), then the other predictions'."""
    by_kind = h.get("by_weight_kind") or {}
    head = h.get("headline")
    if head is None or head not in by_kind:
        return [f"validity horizon: not available ({h.get('why', 'nothing tracked')})"]
    thr = "/".join(h.get("thresholds") or [])
    lines = [f"validity horizon, sustained rel > {thr} (earliest layer; held = within at step "
             f"{h.get('last_step')}) — headline {PREDICTION_NAMES[head]}, {h.get('regime')}: "
             + format_horizons(by_kind[head])]
    if why:
        lines.append(f"  why {PREDICTION_NAMES[head]}: {h.get('why')}")
    for kind in TRACK_KINDS:
        if kind != head and kind in by_kind:
            lines.append(f"  {PREDICTION_NAMES[kind]}: {format_horizons(by_kind[kind])}")
    return lines


def append_metrics(run_dir: str | Path, row: Mapping[str, Any], *, expect_size: int | None = None) -> int:
    """Append one JSON line to RUN/metrics.jsonl (flushed) -> the file's new size in bytes.

    ``expect_size``: the size this run left the file at; a file deleted, cut or appended to by someone
    else meanwhile is refused (one line) instead of silently recreated. A full disk leaves the file as it
    was (no torn row) and is a one-line error naming it."""
    import errno
    import os

    from leadingterms.errors import LeadingTermsError
    from leadingterms.persist import disk_full_error, is_disk_full

    p = Path(run_dir) / METRICS_FILE
    if expect_size is not None:
        size = p.stat().st_size if p.is_file() else None
        if size != expect_size:
            now = "is gone" if size is None else f"has {size} bytes, not the {expect_size} this run wrote"
            raise LeadingTermsError(f"{p} was deleted or changed while the run was writing it (it {now}); "
                                    "the run stopped; its horizons would be wrong: start it over with --force")
    blob = (json.dumps(row, allow_nan=False) + "\n").encode("utf-8")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    before = os.fstat(fd).st_size
    try:
        if os.write(fd, blob) != len(blob):
            raise OSError(errno.EFBIG, "File too large")
    except OSError as exc:
        os.ftruncate(fd, before)
        if is_disk_full(exc):
            raise disk_full_error(p, remedy="resume the run with --resume") from None
        raise LeadingTermsError(f"cannot write {p}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return before + len(blob)


def _comparison_ok(v: Any) -> bool:
    def num(x: Any) -> bool:
        return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x))

    return v is None or (isinstance(v, dict) and all(
        isinstance(d, dict) and all(num(d.get(k)) for k in ("cos", "rel")) for d in v.values()))


def _row_fields() -> dict[str, Any]:
    from leadingterms.schema import NONNEG_INT, NUMBER, OBJECT, Field

    cmp = Field(_comparison_ok, "an object of {weight: {cos, rel}} (finite numbers or null)", True)
    return {"step": NONNEG_INT, "epoch": NUMBER.or_null(), "loss": NUMBER.or_null(),
            "batch_loss": NUMBER.or_null(), "val_loss": NUMBER.or_null(), "closed_form": cmp, "shadow": cmp,
            "second_order": cmp, "layer_spread": OBJECT.or_null()}


def _metric_lines(run_dir: str | Path, upto: int | None) -> list[tuple[str, dict[str, Any]]]:
    """(raw line, parsed row) of RUN/metrics.jsonl with step <= upto. A torn last line (a killed
    process) is skipped; any other unreadable or ill-typed row, or steps not ascending, is a one-line error."""
    from leadingterms.errors import LeadingTermsError
    from leadingterms.schema import check_fields

    p = Path(run_dir) / METRICS_FILE
    if not p.is_file():
        return []
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise LeadingTermsError(f"{p} is corrupt: not UTF-8 text; start the run over with --force") from None
    out: list[tuple[str, dict[str, Any]]] = []
    fields = _row_fields()
    last = -1
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue
            raise LeadingTermsError(f"{p} is corrupt: line {i + 1} is not JSON; start the run over with "
                                    "--force") from None
        check_fields(row, fields, where=f"{p} line {i + 1}", fix="start the run over with --force")
        if row["step"] <= last:
            raise LeadingTermsError(f"{p} is corrupt: line {i + 1} has step {row['step']} after step {last} "
                                    "(rows of two runs mixed?); start the run over with --force")
        last = row["step"]
        if upto is None or row["step"] <= upto:
            out.append((line, row))
    return out


def read_metrics(run_dir: str | Path, *, upto: int | None = None) -> list[dict[str, Any]]:
    """Rows of RUN/metrics.jsonl (``upto``: only rows with step <= upto), schema-checked."""
    return [row for _, row in _metric_lines(run_dir, upto)]


def check_metrics_complete(rows: Sequence[Mapping[str, Any]], *, log_every: int, upto: int,
                           where: str | Path) -> None:
    """Refuse (one line) when ``rows`` lack a logged step at or before ``upto`` (step 0 and every multiple of
    ``log_every``): the log was deleted or cut after those steps were written, so a horizon computed from it
    would be wrong."""
    from leadingterms.errors import LeadingTermsError

    have = {int(r["step"]) for r in rows}
    missing = [s for s in range(0, upto + 1, max(int(log_every), 1)) if s not in have]
    if missing:
        raise LeadingTermsError(
            f"{where} lacks the rows of logged steps {', '.join(map(str, missing[:5]))}"
            f"{' ...' if len(missing) > 5 else ''} (deleted or cut after they were written); its horizons "
            "would be wrong: start the run over with --force")


def truncate_metrics(run_dir: str | Path, upto: int) -> list[dict[str, Any]]:
    """Rewrite RUN/metrics.jsonl atomically keeping the lines with step <= ``upto`` (byte for
    byte; a torn last line from a killed process is dropped) -> the kept rows."""
    from leadingterms.persist import atomic_path

    kept = _metric_lines(run_dir, upto)
    with atomic_path(Path(run_dir) / METRICS_FILE) as tmp:
        tmp.write_text("".join(line + "\n" for line, _ in kept), encoding="utf-8")
    return [row for _, row in kept]
