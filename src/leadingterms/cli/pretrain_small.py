"""``leadingterms pretrain-small``: train a small Pythia-like GPT-NeoX suite with log-spaced checkpoints."""

from __future__ import annotations

import argparse
from typing import Any

from leadingterms.pretrained.suite import SuiteConfig, run_suite


def register(subparsers: Any) -> None:
    d = SuiteConfig(out="")
    p = subparsers.add_parser(
        "pretrain-small",
        help="train a small GPT-NeoX on a corpus and save Pythia-style checkpoints (CPU, minutes)",
        description="Train a small standard GPTNeoXForCausalLM with a BPE tokenizer trained on the corpus and "
        "save log-spaced checkpoints OUT/step0, step1, step2, step4, ... (HF format, with the tokenizer). "
        "Then run "
        "`leadingterms compare-pretrained --model OUT --revisions local ...`.",
    )
    p.add_argument("--corpus-text", metavar="PATH",
                   help="text file (.txt/.xz/...; stories split at <|endoftext|>); "
                   "default: the embedded synthetic stories")
    p.add_argument("--max-docs", type=int, metavar="N", help="read at most N documents")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (DIR/step<N>/, DIR/suite.json)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    p.add_argument("--layers", type=int, default=d.layers, help=f"layers (default {d.layers})")
    p.add_argument("--d-model", type=int, default=d.d_model, help=f"model width (default {d.d_model})")
    p.add_argument("--heads", type=int, default=d.heads, help=f"attention heads (default {d.heads})")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size, help=f"BPE vocabulary (default {d.vocab_size})")
    p.add_argument("--seq-len", type=int, default=d.seq_len, help=f"training context (default {d.seq_len})")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"sequences per step (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak AdamW learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed, help="seed (default 0)")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rec = run_suite(SuiteConfig(
        out=args.out, corpus_text=args.corpus_text, max_docs=args.max_docs, steps=args.steps, layers=args.layers,
        d_model=args.d_model, heads=args.heads, vocab_size=args.vocab_size, seq_len=args.seq_len,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, threads=args.threads,
    ))
    print(f"{len(rec['checkpoints'])} checkpoints in {args.out} ({rec['n_params']:,} parameters, "
          f"{rec['seconds']} s); loss {rec['loss'][0]:.3f} -> {rec['loss'][-1]:.3f}")
    return 0
