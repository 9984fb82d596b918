"""Causal intervention (docs/theory.md §7.2): how much of the dataset loss rests on each predicted direction.

For every weight θ of a trained model (W_O and, per layer l, W^(l), V^(l), P^(l)) and its
predicted direction T (the weight table, :data:`leadingterms.theory.WEIGHTS`: B̄, Φ̄ᵀB̄ᵀ, Q̄, Δ),
the dataset loss (mean cross-entropy over the given sequences) is evaluated

- ``original``: as trained;
- ``removed``: with θ ← θ − (⟨θ,T⟩_F / ‖T‖²_F)·T (the projection on T removed; the rest kept);
- ``replaced``: with θ replaced by its closed-form prediction at step S (``coef(S)·T``);
- ``control`` (optional, docs/theory.md (7.3)): with a component of the same Frobenius norm as the
  removed projection taken away along a random direction R (θ's shape, i.i.d. N(0, 1), one per seed),
  so that the loss change of ``removed`` can be read against that of an arbitrary direction.

Only that one weight changes per row; the others stay as trained. :func:`intervene` is pure over
(model, basis, tokens): it restores the model's weights before returning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from leadingterms.basis import Basis
from leadingterms.config import check_config, option
from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import frobenius_cosine
from leadingterms.model import AttentionOnlyTransformer, dataset_loss
from leadingterms.theory import WEIGHTS, directions, param_names, parse_param
from leadingterms.validate import device_spec, learned_step, nonnegative_int, positive_int

INTERVENTION_FILE = "intervention.json"
DEFINITIONS = {
    "loss_removed": "loss with W <- W - (<W,T>_F/||T||_F^2) T for that one weight (T = B_bar for W_O, "
                    "Phi_bar^T B_bar^T for V, Q_bar for W, Delta for P)",
    "loss_replaced": "loss with that one weight replaced by its closed-form prediction at `step` "
                     "(docs/theory.md §3)",
    "cos": "Frobenius cosine between the trained weight and T (0 when either is zero)",
    "loss_control": "with --control random: one loss per seed, W <- W - (|<W,T>_F|/||T||_F) R/||R||_F for a "
                    "random R of W's shape with i.i.d. N(0,1) entries (docs/theory.md (7.3))",
}
#: the controls ``intervene --control`` offers
CONTROLS = ("none", "random")


def projection_coefficient(W: Tensor, T: Tensor) -> float:
    """⟨W,T⟩_F / ‖T‖²_F (0 when T = 0), in float64."""
    T64 = T.detach().to("cpu", torch.float64)
    denom = float((T64 * T64).sum())
    if denom == 0.0:
        return 0.0
    return float((W.detach().to("cpu", torch.float64) * T64).sum()) / denom


def project_out(W: Tensor, T: Tensor) -> Tensor:
    """W − (⟨W,T⟩_F/‖T‖²_F)·T in float64 (same shape as W): the part of W orthogonal to T."""
    if W.shape != T.shape:
        raise LeadingTermsError(f"weight of shape {tuple(W.shape)} and direction {tuple(T.shape)} differ")
    return W.detach().to("cpu", torch.float64) - projection_coefficient(W, T) * T.detach().to("cpu", torch.float64)


def random_direction(shape: tuple[int, ...], seed: int) -> Tensor:
    """R of ``shape`` with i.i.d. N(0, 1) entries from ``torch.Generator().manual_seed(seed)``, float64, CPU."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)


def remove_random(W: Tensor, T: Tensor, R: Tensor) -> Tensor:
    """W − (|⟨W,T⟩_F|/‖T‖_F)·R/‖R‖_F in float64 (docs/theory.md (7.3)): a component of the norm that
    :func:`project_out` removes, taken away along R instead of T."""
    if W.shape != T.shape or W.shape != R.shape:
        raise LeadingTermsError(f"weight {tuple(W.shape)}, direction {tuple(T.shape)} and control "
                                f"{tuple(R.shape)} differ in shape")
    T64, R64 = T.detach().to("cpu", torch.float64), R.detach().to("cpu", torch.float64)
    W64 = W.detach().to("cpu", torch.float64)
    norm_T, norm_R = float(T64.norm()), float(R64.norm())
    if norm_T == 0.0 or norm_R == 0.0:
        return W64
    return W64 - (abs(float((W64 * T64).sum())) / norm_T) * (R64 / norm_R)


@dataclass
class InterventionResult:
    """Dataset losses of one checkpoint: as trained, and per weight with its direction removed / replaced.

    ``rows``: one dict per parameter in model order (W_O, then per layer W, V, P) with ``param, kind,
    layer, direction, projection_coef, cos, loss_removed, loss_replaced`` and, with a random control,
    ``loss_control`` (one loss per seed of ``control_seeds``).
    """

    step: int
    lr: float
    n_sequences: int
    original_loss: float
    rows: list[dict[str, Any]]
    run: str | None = None
    corpus: str | None = None
    control: str = "none"
    control_seeds: list[int] = field(default_factory=list)
    definitions: dict[str, str] = field(default_factory=lambda: dict(DEFINITIONS))
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "notes"}


def intervene(model: AttentionOnlyTransformer, basis: Basis, tokens: Any, *, step: int, lr: float,
              batch_size: int = 64, control_seeds: Sequence[int] = ()) -> InterventionResult:
    """Dataset loss originally, with each weight's projection on its prediction removed, and with
    each weight replaced by its closed-form prediction at ``step`` (learning rate ``lr``).

    model: the trained model (weights restored on return); basis: its corpus's Basis (same V, T);
    tokens: (N, T+1) sequences the loss is measured on. ``control_seeds``: for each seed, also the loss
    with a component of the removed norm taken away along a random direction (docs/theory.md (7.3)).
    """
    from leadingterms.predict import closed_form

    weights = {k: v.detach().clone() for k, v in model.named_parameters()}
    L = model.cfg.layers
    if basis.B_bar.shape != weights["W_O"].shape:
        raise LeadingTermsError(
            f"the basis (V={basis.V}) does not match the model (W_O {tuple(weights['W_O'].shape)})")
    if basis.Delta.shape != weights["layers.0.P"].shape:
        raise LeadingTermsError(
            f"the basis (T={basis.T}) does not match the model (P {tuple(weights['layers.0.P'].shape)})")
    dirs = {k: v.detach().to(torch.float64) for k, v in directions(basis, L).items()}
    predicted = closed_form(basis, step, lr, L)
    params = dict(model.named_parameters())

    def loss_with(name: str, value: Tensor) -> float:
        p = params[name]
        with torch.no_grad():
            p.copy_(value.to(device=p.device, dtype=p.dtype))
        try:
            return dataset_loss(model, tokens, batch_size=batch_size)
        finally:
            with torch.no_grad():
                p.copy_(weights[name])

    original = dataset_loss(model, tokens, batch_size=batch_size)
    rows: list[dict[str, Any]] = []
    for name in param_names(L):
        W, T = weights[name], dirs[name]
        kind, layer = parse_param(name)
        rows.append({
            "param": name,
            "kind": kind,
            "layer": layer,
            "direction": WEIGHTS[kind].direction_symbol,
            "projection_coef": projection_coefficient(W, T),
            "cos": frobenius_cosine(W, T),
            "loss_removed": loss_with(name, project_out(W, T)),
            "loss_replaced": loss_with(name, predicted[name]),
        })
        if control_seeds:
            controls = (remove_random(W, T, random_direction(tuple(W.shape), seed)) for seed in control_seeds)
            rows[-1]["loss_control"] = [loss_with(name, C) for C in controls]  # one V×V copy at a time
    return InterventionResult(step=int(step), lr=float(lr), n_sequences=int(np.asarray(tokens).shape[0]),
                              original_loss=original, rows=rows, control="random" if control_seeds else "none",
                              control_seeds=[int(x) for x in control_seeds])


def control_summary(row: dict[str, Any], original: float) -> tuple[float, float, float] | None:
    """(mean, min, max) of the loss change of a row's random controls; None without a control."""
    losses = row.get("loss_control")
    if not losses:
        return None
    d = [float(x) - original for x in losses]
    return sum(d) / len(d), min(d), max(d)


def format_table(result: InterventionResult) -> str:
    """The intervention result as a fixed-width table (one row per weight and layer)."""
    o = result.original_loss
    head = (f"dataset loss over {result.n_sequences} sequences at step {result.step} "
            f"(lr {result.lr:g}); original {o:.6f}")
    control = bool(result.control_seeds)
    cols = f"{'weight':<12} {'direction':<9} {'cos':>8} {'projection removed':>20} {'Δloss':>10} " \
           f"{'closed form':>12} {'Δloss':>10}"
    if control:
        cols += f" {'random, Δloss mean':>19} {'[min, max]':>21}"
    lines = [head, cols, "-" * len(cols)]
    for r in result.rows:
        line = (f"{r['param']:<12} {r['direction']:<9} {r['cos']:>8.4f} {r['loss_removed']:>20.6f} "
                f"{r['loss_removed'] - o:>+10.2e} {r['loss_replaced']:>12.6f} {r['loss_replaced'] - o:>+10.2e}")
        c = control_summary(r, o)
        if c is not None:
            line += f" {c[0]:>+19.2e} [{c[1]:+.2e}, {c[2]:+.2e}]"
        lines.append(line)
    if control:
        lines.append(f"random: the same norm removed along a random direction, seeds {result.control_seeds} "
                     "(docs/theory.md (7.3)); a Δloss far above it is specific to the predicted direction")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the intervene stage


@dataclass(kw_only=True)
class InterventionConfig:
    """``leadingterms intervene``: one checkpoint of a run, its loss with each predicted direction removed."""

    run: str = option(help="run folder from `leadingterms train`", metavar="RUN")
    step: int | None = option(None, help="checkpoint step (default: the latest)", metavar="S",
                              check=learned_step)
    max_sequences: int | None = option(None, help="evaluate the loss on the first N training sequences "
                                       "(default: all)", metavar="N", check=positive_int)
    batch_size: int = option(64, help="sequences per forward pass", metavar="B", check=positive_int)
    device: str = option("cpu", help="cpu, cuda, cuda:N or auto", check=device_spec)
    control: str = option("none", choices=CONTROLS, help="random: next to each row, remove a component of the "
                          "same norm along random directions (docs/theory.md (7.3))")
    control_seeds: int = option(3, help="how many random directions (seeds --seed, --seed+1, ...)", metavar="N",
                                check=positive_int)
    seed: int = option(0, help="first seed of the random control directions", check=nonnegative_int)


def run_intervention(cfg: InterventionConfig) -> InterventionResult:
    """Load RUN's checkpoint, basis and corpus, run :func:`intervene`, write RUN/intervention.json."""
    from leadingterms.persist import write_json
    from leadingterms.training import load_run
    from leadingterms.validate import resolve_device

    check_config(cfg)
    run = load_run(cfg.run)
    step = cfg.step if cfg.step is not None else max(run.checkpoints, default=None)
    if step == 0:
        raise LeadingTermsError(f"run {run.path} has no checkpoint after step 0 (the initialisation, nothing "
                                "learned yet)")
    model = run.load_checkpoint(step, device=resolve_device(cfg.device))  # one-line error if absent
    step = int(step if step is not None else 0)
    basis = run.basis()
    store = run.store()  # the corpus the run was trained on (hash checked)
    assert store is not None
    tokens = store.tokens if cfg.max_sequences is None else store.tokens[: cfg.max_sequences]
    if basis.V != store.V or basis.T != store.T:
        raise LeadingTermsError(f"the run's basis (V={basis.V}, T={basis.T}) does not match its corpus "
                                f"{store.path} (V={store.V}, T={store.T})")
    seeds = list(range(cfg.seed, cfg.seed + cfg.control_seeds)) if cfg.control == "random" else []
    result = intervene(model, basis, tokens, step=step, lr=run.config.lr, batch_size=cfg.batch_size,
                       control_seeds=seeds)
    result.run, result.corpus = str(Path(cfg.run)), str(store.path)
    from leadingterms.provenance import file_record

    provenance = {"run_id": run.info.get("run_id"), "step": step, "corpus_hash": store.content_hash,
                  "checkpoint": file_record(run.checkpoints[step])}
    from leadingterms.locks import output_lock

    with output_lock(Path(cfg.run) / INTERVENTION_FILE, folder=False, what="intervention"):
        write_json(Path(cfg.run) / INTERVENTION_FILE, {**result.to_json(), "provenance": provenance})
    return result


def _number_or_null(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def read_intervention(run: Any) -> dict[str, Any] | None:
    """RUN/intervention.json of a loaded run (None when there is none), schema-checked and verified to
    belong to this run as it is now (its run id; the checkpoint it was computed from, when still kept,
    unchanged): an intervention of an earlier run in the same folder is refused, not shown."""
    from leadingterms.persist import read_json
    from leadingterms.provenance import verify_file
    from leadingterms.schema import LIST, NONNEG_INT, NUMBER, OBJECT, POS_INT, POS_NUMBER, STR, Field, check_fields

    p = Path(run.path) / INTERVENTION_FILE
    if not p.is_file():
        return None
    fix = f"recompute it with `leadingterms intervene --run {run.path}`"
    res = check_fields(read_json(p, what="intervention result"), {
        "step": NONNEG_INT, "lr": POS_NUMBER, "n_sequences": POS_INT, "original_loss": NUMBER, "rows": LIST,
        "provenance": OBJECT}, where=p, fix=fix)
    num = Field(_number_or_null, "a number or null")
    for i, r in enumerate(res["rows"]):
        check_fields(r, {"param": STR, "direction": STR, "cos": num, "projection_coef": num,
                         "loss_removed": NUMBER, "loss_replaced": NUMBER, "loss_control": LIST.or_null()},
                     where=f"{p} row {i + 1}", fix=fix)
    prov = res["provenance"]
    if prov.get("run_id") != run.info.get("run_id") or prov.get("step") != res["step"]:
        raise LeadingTermsError(f"{p} was computed for another run (run id {prov.get('run_id')}, this run is "
                                f"{run.info.get('run_id')}); {fix}")
    ckpt = run.checkpoints.get(res["step"])
    if ckpt is not None:
        verify_file(ckpt, prov.get("checkpoint"), what=f"{p} (checkpoint of step {res['step']})", fix=fix)
    return dict(res)
