"""``leadingterms train``: SGD training with live tracking against the theory (thin CLI layer)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from leadingterms.budget import format_bytes
from leadingterms.cli import Command, print_note
from leadingterms.errors import LeadingTermsError
from leadingterms.training import RunResult, TrainConfig, train
from leadingterms.training.rundir import saved_config
from leadingterms.training.tracking import horizon_lines
from leadingterms.validate import flag

#: saved fields a resumed run takes when the command line does not give them
_FROM_SAVED = tuple(f.name for f in fields(TrainConfig) if f.name not in ("out", "resume", "force", "dry_run",
                                                                            "progress"))


def from_args(given: dict[str, Any]) -> TrainConfig:
    """The config from the command line; with ``--resume`` every option not given comes from the saved run
    (and a new ``--steps``/``--epochs`` replaces the saved pair)."""
    base: dict[str, Any] = {}
    if given.get("resume"):
        saved = saved_config(given["out"])
        if not saved and not all(given.get(k) is not None for k in ("corpus", "layers", "lr", "batch_size")):
            raise LeadingTermsError(f"--resume: {given['out']} holds no run to resume (no config.json); give the "
                                    "run's folder, or --corpus, --layers, --lr and --batch-size to start one")
        base = {k: v for k, v in saved.items() if k in _FROM_SAVED}
        if "steps" in given or "epochs" in given:
            base.pop("steps", None)
            base.pop("epochs", None)
    merged = {**base, **given}
    missing = [flag(k) for k in ("corpus", "layers", "lr", "batch_size") if merged.get(k) is None]
    if missing:
        raise LeadingTermsError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                                "(or --resume an existing run)")
    return TrainConfig(**merged)


def run(cfg: TrainConfig) -> RunResult:
    """``train`` with the estimate printed (stderr) as soon as it is known; a dry run prints it on stdout."""
    return train(cfg, on_note=None if cfg.dry_run else lambda line: print_note("train", line))


def show(res: RunResult) -> Iterator[str]:
    if res.dry_run:
        yield from res.estimate
        yield f"dry run: nothing written to {res.run_dir}"
        return
    final = res.final
    written = format_bytes(res.summary.get("checkpoint_bytes_written", 0))
    kept = format_bytes(res.summary.get("checkpoint_bytes_kept", 0))
    yield (f"wrote {res.run_dir} ({res.steps} steps, {res.steps_per_s or 0:.2f} steps/s"
           + (f", resumed from step {res.resumed_from}" if res.resumed_from else "")
           + f"; checkpoints: {written} written, {kept} kept)")
    loss = final.get("loss")
    yield f"final loss {loss:.6f}" if loss is not None else "final loss n/a"
    for kind in ("closed_form", "shadow", "second_order"):
        cmp = {k: v for k, v in (final.get(kind) or {}).items() if v.get("rel") is not None}
        if cmp:
            name, worst = max(cmp.items(), key=lambda kv: kv[1]["rel"])
            cos = min((v["cos"] for v in cmp.values() if v.get("cos") is not None), default=float("nan"))
            yield f"{kind:<13} worst rel {worst['rel']:.4g} ({name}); min cos {cos:.6g}"
    if res.summary.get("horizon"):
        yield from horizon_lines(res.summary["horizon"])


COMMAND = Command(
    name="train",
    help="train the attention-only transformer, tracking the closed forms live",
    description="Train the model of docs/theory.md §1 with SGD (or Adam, outside the theory) on a token store. "
    "Every --log-every steps (and at step 0 and the end) RUN/metrics.jsonl gets the loss and the cosine / "
    "relative error of every weight against the closed form (§3), the SGD shadow (§5) and the second-order "
    "terms (§4); RUN/summary.json records the validity horizons (sustained crossings, in steps and "
    "s·η) and which one is the headline: the shadow under minibatch SGD, the closed form under full-batch GD "
    "(docs/theory.md §6.3). Before the first step it prints the estimated time per step, total time, peak "
    "memory and disk, and refuses when memory or disk would not suffice (--dry-run: print the estimate and "
    "stop). Checkpoints in RUN/checkpoints/ (a bounded set: early log-spaced steps, every --checkpoint-every "
    "steps, the last) allow a bit-identical --resume; with --resume every option not given is taken from the "
    "saved run.",
    usage="leadingterms train --corpus DIR --layers L --lr ETA --batch-size B (--steps S | --epochs E) "
    "--out RUN [options]\n       leadingterms train --out RUN --resume [--steps S | --epochs E] [options]",
    config=TrainConfig,
    run=run,
    show=show,
    from_args=from_args,
)
