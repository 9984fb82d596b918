"""``leadingterms stats``: token store -> basis functions (SPEC §2) in OUT/basis.safetensors + basis.json."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from leadingterms.persist import format_bytes


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stats",
        help="compute the corpus statistics (B_bar, Phi_bar, Q_bar, Delta, Pi, A_bar)",
        description="Compute every SPEC §2 statistic of a token store, exactly, normalised by 1/(N*T). "
        "Writes OUT/basis.safetensors and OUT/basis.json; reuses OUT if it already holds the basis "
        "of the same corpus with the same settings.",
    )
    p.add_argument("--corpus", required=True, type=Path, help="token store directory (from `leadingterms corpus`)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="accumulation and storage dtype (default float64)")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="keep the K most frequent tokens, map the rest to <other> (id K)")
    p.add_argument("--extras", action="store_true",
                   help="also save interchange_next (B̄ᵀB̄), interchange_prev (B̄B̄ᵀ) and G_bar")
    p.add_argument("--force", action="store_true", help="recompute even if OUT holds a matching basis")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from leadingterms.basis import StatsConfig, run_stats

    cfg = StatsConfig(corpus=args.corpus, out=args.out, dtype=args.dtype, top_k=args.top_k,
                      extras=args.extras, force=args.force)
    basis, reused = run_stats(cfg)
    m = basis.meta
    if reused:
        print(f"basis in {cfg.out} is up to date (corpus {m.get('corpus_hash')}); use --force to recompute")
    else:
        print(f"basis: N={basis.N} T={basis.T} V={basis.V} {m.get('dtype')} in {m.get('seconds', 0):.2f} s "
              f"({m.get('tokens_per_second', 0):,.0f} tokens/s, peak memory "
              f"{format_bytes(int(m.get('peak_memory_bytes', 0)))}) -> {cfg.out}/basis.safetensors")
    return 0
