"""``leadingterms intervene``: causal intervention on a trained checkpoint (thin CLI layer)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "intervene",
        help="dataset loss with each weight's predicted direction removed / replaced by the closed form",
        description="For each weight and layer of a run's checkpoint, evaluate the dataset loss as trained, "
        "after removing the weight's projection on its predicted direction (W <- W - <W,T>/||T||^2 T with "
        "T = B̄ for W_O, Φ̄ᵀB̄ᵀ for V, Q̄ for W, Δ for P) and after replacing it by its closed-form "
        "prediction at that step (SPEC §3). Prints a table and writes RUN/intervention.json.",
    )
    p.add_argument("--run", required=True, metavar="RUN", help="run directory from `leadingterms train`")
    p.add_argument("--step", type=int, metavar="S", help="checkpoint step (default: the latest)")
    p.add_argument("--max-sequences", type=int, metavar="N",
                   help="evaluate the loss on the first N training sequences (default: all)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B",
                   help="sequences per forward pass (default 64)")
    p.add_argument("--device", default="cpu", metavar="cpu|cuda", help="device (default cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from leadingterms.intervene import INTERVENTION_FILE, InterventionConfig, format_table, run_intervention

    cfg = InterventionConfig(run=args.run, step=args.step, max_sequences=args.max_sequences,
                             batch_size=args.batch_size, device=args.device)
    result = run_intervention(cfg)
    print(format_table(result))
    print(f"wrote {Path(args.run) / INTERVENTION_FILE}")
    return 0
