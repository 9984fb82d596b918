"""``leadingterms compare-pretrained``: SPEC §6 similarities of pretrained causal LMs across checkpoints."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from leadingterms.pretrained.compare import CompareConfig, run_compare, summary_lines
from leadingterms.pretrained.stats import CorpusSpec


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "compare-pretrained",
        help="compare the predicted features with pretrained LMs (Pythia-style checkpoints)",
        description="Feed the K most frequent corpus tokens (under each model's own tokenizer) alone through "
        "causal LMs (GPT-NeoX/Pythia, GPT-2, Llama family) and compare, per layer, the Gram matrices of the "
        "residual streams with Φ̄ᵀB̄ᵀ and of the query-key scores with Q̄ (SPEC §6). Offline first: with "
        "HF_HUB_OFFLINE or no network, hub models come from the local cache.",
    )
    m = p.add_argument_group("models")
    m.add_argument("--model", action="append", required=True, metavar="NAME_OR_PATH",
                   help="hub name or local folder (repeat for several, e.g. local checkpoint folders)")
    rv = m.add_mutually_exclusive_group()
    rv.add_argument("--revision", action="append", default=[], metavar="R",
                    help="revision (hub branch/tag/commit, or a sub-folder of a local model); repeatable")
    rv.add_argument("--revisions", metavar="SPEC",
                    help="pythia (Pythia's 154 checkpoints), pythia:FIRST-LAST (a step range of them) or "
                    "local (every DIR/step<N> folder)")
    m.add_argument("--trust-remote-code", action="store_true",
                   help="allow models with custom code (off by default; only for models you trust)")
    c = p.add_argument_group("corpus (exactly one source)")
    c.add_argument("--text", metavar="PATH", help="text file (.txt/.xz/.gz/.bz2), stories split at <|endoftext|>")
    c.add_argument("--dataset", metavar="NAME", help="Hugging Face dataset name, or a save_to_disk folder")
    c.add_argument("--dataset-config", metavar="C", help="dataset configuration name")
    c.add_argument("--split", default="train", help="dataset split (default train)")
    c.add_argument("--text-column", default="text", help="dataset column holding the text (default text)")
    c.add_argument("--max-docs", type=int, metavar="N", help="read at most N documents")
    c.add_argument("--seq-len", type=int, default=128, metavar="T",
                   help="documents with >= T+1 tokens, truncated to T+1 (default 128)")
    c.add_argument("--top-k", type=int, required=True, metavar="K", help="compare over the K most frequent tokens")
    c.add_argument("--cache-dir", metavar="DIR",
                   help="statistics cache (default $LEADINGTERMS_CACHE/pretrained, "
                   "else ~/.cache/leadingterms/pretrained)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--batch-size", type=int, default=256, metavar="B",
                   help="tokens per forward pass (default 256)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> CompareConfig:
    return CompareConfig(
        models=list(args.model), out=args.out, top_k=args.top_k, revisions=list(args.revision),
        revisions_spec=args.revisions,
        corpus=CorpusSpec(text=args.text, dataset=args.dataset, dataset_config=args.dataset_config,
                          split=args.split, text_column=args.text_column, max_docs=args.max_docs,
                          seq_len=args.seq_len),
        device=args.device, batch_size=args.batch_size, trust_remote_code=args.trust_remote_code,
        cache_dir=args.cache_dir, plots=not args.no_plots,
    )


def run(args: argparse.Namespace) -> int:
    index = run_compare(config_from_args(args))
    for line in summary_lines(index, args.out):
        print(line)
    print(f"wrote {args.out}/index.json, {args.out}/<label>/similarity.json and figures", file=sys.stderr)
    return 0
