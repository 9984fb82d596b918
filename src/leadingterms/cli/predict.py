"""``leadingterms predict``: closed-form weights (SPEC §3, optionally §4) from a stats dir."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="closed-form weights after S steps of full-batch GD (SPEC §3/§4)",
        description="Write the predicted weights W_O, layers.{l}.W/V/P after S steps of full-batch GD "
        "from zero with learning rate ETA (SPEC §3; --order 2 adds the §4 terms for W_O and V) "
        "and print the paper's (loose) Frobenius bounds.",
    )
    p.add_argument("--stats", type=Path, required=True, metavar="DIR",
                   help="basis directory from `leadingterms stats`")
    p.add_argument("--steps", type=int, required=True, metavar="S", help="number of GD steps s (>= 1)")
    p.add_argument("--lr", type=float, required=True, metavar="ETA", help="learning rate eta (> 0)")
    p.add_argument("--layers", type=int, required=True, metavar="L", help="number of layers (>= 1)")
    p.add_argument("--order", type=int, choices=(1, 2), default=1, help="1: SPEC §3 leading terms; 2: + SPEC §4")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="output .safetensors file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leadingterms.predict import LOOSE_BOUNDS_NOTE, PredictConfig, run_predict

    cfg = PredictConfig(stats=args.stats, steps=args.steps, lr=args.lr, layers=args.layers,
                        out=args.out, order=args.order)
    meta = run_predict(cfg)
    print(f"wrote {cfg.out} (s={cfg.steps}, eta={cfg.lr:g}, L={cfg.layers}, order {cfg.order})")
    print(f"{'weight':<8} {'||predicted||_F':>16} {'paper bound on ||learned - predicted||_F':>42}")
    norms = meta["norms"]
    for kind, bound in meta["bounds"].items():
        name = "W_O" if kind == "W_O" else f"layers.0.{kind}"
        print(f"{kind:<8} {norms[name]:>16.4e} {bound:>42.4e}")
    print(LOOSE_BOUNDS_NOTE)
    return 0
