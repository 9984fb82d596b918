"""``leadingterms demo``: the whole pipeline on the embedded synthetic corpus (thin CLI layer)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(sub: Any) -> None:
    from leadingterms.demo import DemoConfig

    d = DemoConfig()
    p = sub.add_parser(
        "demo",
        help="the main job: synthetic corpus -> basis -> predictions -> training -> intervention -> report",
        description="Run every stage on the embedded synthetic corpus (stories with planted associations) "
        "in about a minute on 2 CPU cores, write OUT/run/report.html and print a short summary.",
    )
    p.add_argument("--out", default=d.out, metavar="DIR", help=f"output folder (default {d.out})")
    p.add_argument("--docs", type=int, default=d.docs, help=f"synthetic stories (default {d.docs})")
    p.add_argument("--seq-len", type=int, default=d.seq_len, metavar="T",
                   help=f"sequence length (default {d.seq_len})")
    p.add_argument("--layers", type=int, default=d.layers, help=f"attention layers (default {d.layers})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"SGD learning rate (default {d.lr:g})")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"batch size (default {d.batch_size})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"training steps (default {d.steps})")
    p.add_argument("--log-every", type=int, default=d.log_every, help=f"log every N steps (default {d.log_every})")
    p.add_argument("--heatmap-tokens", type=int, default=d.heatmap_tokens, metavar="N",
                   help=f"heatmaps and overlap over the N most frequent tokens (default {d.heatmap_tokens})")
    p.add_argument("--seed", type=int, default=d.seed, help="corpus and data-order seed (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leadingterms.demo import DemoConfig, run_demo
    from leadingterms.progress import progress_enabled

    cfg = DemoConfig(out=args.out, docs=args.docs, seq_len=args.seq_len, layers=args.layers, lr=args.lr,
                     batch_size=args.batch_size, steps=args.steps, log_every=args.log_every, seed=args.seed,
                     heatmap_tokens=args.heatmap_tokens,
                     progress=progress_enabled())
    res = run_demo(cfg, echo=lambda m: print(m, file=sys.stderr))
    print("\n".join(res["lines"]))
    return 0
