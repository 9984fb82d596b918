"""``leadingterms report``: RUN/report.html, a self-contained page about a run (thin CLI layer)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write RUN/report.html: configuration, corpus, basis, tracking, horizon, intervention, associations",
        description="Write a self-contained HTML report (inline CSS, figures as data URIs, readable offline) "
        "about a training run: configuration, corpus summary, top associations of the basis functions, "
        "tracking plots, validity horizon, the intervention table (from `leadingterms intervene`), learned vs "
        "predicted associations, and the pretrained comparison when RUN/pretrained/ (or --pretrained) has one.",
    )
    p.add_argument("--run", required=True, metavar="RUN", help="run directory from `leadingterms train`")
    p.add_argument("--out", metavar="FILE", help="output file (default RUN/report.html)")
    p.add_argument("--tokens", metavar="T1,T2,...",
                   help="tokens whose rows are listed (default: 3 most frequent + planted subjects)")
    p.add_argument("--k", type=int, default=5, help="top-k of each readout (default 5)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--step", type=int, metavar="S",
                   help="checkpoint compared with the predictions (default: latest)")
    g.add_argument("--within-horizon", action="store_true",
                   help="compare the last checkpoint before any closed-form relative error exceeds 20%%")
    p.add_argument("--heatmap-tokens", type=int, default=50, metavar="N",
                   help="heatmaps and overlap over the N most frequent tokens (default 50)")
    p.add_argument("--pretrained", metavar="DIR", help="a `compare-pretrained --out DIR` folder to include")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leadingterms.report import ReportConfig, build_report

    tokens = [t for t in args.tokens.split(",") if t] if args.tokens else None
    cfg = ReportConfig(run=args.run, out=args.out, tokens=tokens, k=args.k, step=args.step,
                       heatmap_tokens=args.heatmap_tokens, pretrained=args.pretrained,
                       within_horizon=args.within_horizon)
    print(f"wrote {build_report(cfg)}")
    return 0
