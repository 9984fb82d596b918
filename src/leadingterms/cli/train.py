"""``leadingterms train``: SGD training with live tracking against the theory (thin CLI layer)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

_FIELDS = ("corpus", "layers", "lr", "batch_size", "grad_accum", "steps", "epochs", "log_every",
           "checkpoint_every", "dtype", "init", "seed", "optimizer", "device", "keep_last", "track",
           "eval_sequences", "stats")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train the attention-only transformer, tracking the closed forms live",
        description="Train the SPEC §1 model with SGD (or Adam, outside the theory) on a token store. "
        "Every --log-every steps (and at step 0 and the end) RUN/metrics.jsonl gets the loss and the "
        "cosine / relative error of every weight against the closed form (SPEC §3), the SGD shadow "
        "(§5) and the second-order terms (§4); RUN/summary.json records the validity horizon. "
        "Checkpoints in RUN/checkpoints/ allow a bit-identical --resume. With --resume, options not "
        "given are taken from the saved run.",
    )
    p.add_argument("--corpus", metavar="DIR", help="token store from `leadingterms corpus`")
    p.add_argument("--layers", type=int, metavar="L", help="number of attention layers")
    p.add_argument("--lr", type=float, metavar="ETA", help="learning rate (> 0)")
    p.add_argument("--batch-size", type=int, metavar="B", help="sequences per micro-batch (N: full-batch GD)")
    p.add_argument("--grad-accum", type=int, metavar="K", help="micro-batches per optimizer step (default 1)")
    n = p.add_mutually_exclusive_group()
    n.add_argument("--steps", type=int, metavar="S", help="number of optimizer steps")
    n.add_argument("--epochs", type=int, metavar="E", help="number of passes over the corpus")
    p.add_argument("--log-every", type=int, metavar="N", help="log metrics every N steps (default 10)")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="checkpoint every N steps (default: --log-every), plus steps 0, 1, 2, 4, 8, ...")
    p.add_argument("--dtype", choices=("float32", "float64"), help="model dtype (default float32)")
    p.add_argument("--init", metavar="zero|normal:STD", help="initialisation (default zero, the theory's)")
    p.add_argument("--seed", type=int, help="seed of the data order and of a normal init (default 0)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), help="sgd (default, the paper's) or adam")
    p.add_argument("--device", metavar="cpu|cuda", help="device (default cpu)")
    p.add_argument("--keep-last", type=int, metavar="K",
                   help="checkpoints kept besides the log-spaced ones (default 3)")
    p.add_argument("--track", metavar="KINDS",
                   help="comma-separated predictions to track: closed_form,shadow,second_order (default all) "
                        "or none")
    p.add_argument("--eval-sequences", type=int, metavar="M",
                   help="logged loss over the first M training sequences (default: all)")
    p.add_argument("--stats", metavar="DIR", help="precomputed basis (`leadingterms stats`) instead of RUN/basis/")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the run in RUN from its last checkpoint")
    g.add_argument("--overwrite", action="store_true", help="start RUN over (its basis cache is kept)")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    """argparse namespace (+ the saved config when resuming) -> TrainConfig."""
    from leadingterms.errors import LeadingTermsError
    from leadingterms.persist import read_json
    from leadingterms.training import TrainConfig
    from leadingterms.training.runner import CONFIG_FILE

    given: dict[str, Any] = {k: getattr(args, k) for k in _FIELDS if getattr(args, k) is not None}
    if "track" in given:
        kinds = [k.strip() for k in given["track"].split(",") if k.strip()]
        given["track"] = () if kinds == ["none"] else tuple(kinds)
    base: dict[str, Any] = {}
    saved = Path(args.out) / CONFIG_FILE
    if args.resume and saved.is_file():
        base = {k: v for k, v in read_json(saved, what="run config").get("config", {}).items() if k in _FIELDS}
        if "steps" in given or "epochs" in given:  # how far to train: the new flag replaces the old pair
            base.pop("steps", None)
            base.pop("epochs", None)
    merged = {**base, **given}
    for req in ("corpus", "layers", "lr", "batch_size"):
        if merged.get(req) is None:
            raise LeadingTermsError(f"--{req.replace('_', '-')} is required")
    if merged.get("steps") is None and merged.get("epochs") is None:
        raise LeadingTermsError("give --steps S or --epochs E")
    return TrainConfig(out=str(args.out), resume=args.resume, overwrite=args.overwrite, **merged)


def run(args: argparse.Namespace) -> int:
    from leadingterms.training import train

    cfg = build_config(args)
    res = train(cfg)
    final = res.final
    print(f"wrote {res.run_dir} ({res.steps} steps, {res.steps_per_s or 0:.2f} steps/s"
          + (f", resumed from step {res.resumed_from}" if res.resumed_from else "") + ")")
    loss = final.get("loss")
    print(f"final loss {loss:.6f}" if loss is not None else "final loss n/a")
    for kind in ("closed_form", "shadow", "second_order"):
        cmp = final.get(kind) or {}
        if cmp:
            worst = max(cmp.items(), key=lambda kv: kv[1]["rel"] if kv[1]["rel"] is not None else float("inf"))
            print(f"{kind:<13} worst rel {worst[1]['rel']} ({worst[0]}); "
                  f"min cos {min((v['cos'] for v in cmp.values() if v['cos'] is not None), default=None)}")
    for note in res.summary.get("theory_caveats", []):
        print(f"note: {note}")
    return 0
