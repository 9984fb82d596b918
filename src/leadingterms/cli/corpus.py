"""``leadingterms corpus``: text / JSON Lines / HF dataset / synthetic -> token store."""

from __future__ import annotations

import argparse
from typing import Any

from leadingterms.corpus.pipeline import CorpusConfig, build, summary


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "corpus",
        help="tokenize a corpus into a token store (DIR/tokens.npy + DIR/corpus.json)",
        description="Read a corpus (a text file, JSON Lines, a Hugging Face dataset, or by default the embedded "
        "synthetic stories), tokenize it and write (N, T+1) sequences to a token store (SPEC §6).",
    )
    src = p.add_argument_group("source (at most one; none = the embedded synthetic corpus)")
    src.add_argument("--text", metavar="PATH", help="text file (.txt, .xz, .gz, .bz2)")
    src.add_argument("--jsonl", metavar="PATH", help="JSON Lines file, one document per line")
    src.add_argument("--dataset", metavar="NAME",
                     help="Hugging Face dataset (a datasets.load_dataset name or builder)")
    src.add_argument("--load-from-disk", metavar="DIR", help="folder written by Dataset.save_to_disk")
    src.add_argument("--dataset-config", metavar="C", help="dataset configuration name")
    src.add_argument("--data-files", nargs="+", metavar="F", help="data files for a builder such as json or text")
    src.add_argument("--split", default="train", help="dataset split (default train)")
    src.add_argument("--text-field", "--text-column", dest="text_field", default="text",
                     help="JSON Lines field / dataset column holding the text (default text)")
    src.add_argument("--streaming", action="store_true", help="stream the dataset (use with --max-documents)")
    src.add_argument("--split-by", default="auto", metavar="MODE",
                     help="text files: documents end at <|endoftext|> lines (eot), blank lines (blank), "
                     "every line (line), or auto (the first that applies; default)")
    src.add_argument("--max-documents", type=int, metavar="N", help="read at most N documents")
    src.add_argument("--synthetic-docs", type=int, default=CorpusConfig.synthetic_docs, metavar="N",
                     help=f"synthetic corpus size (default {CorpusConfig.synthetic_docs})")
    src.add_argument("--synthetic-seed", type=int, default=0, metavar="S",
                     help="synthetic corpus seed (default 0)")
    tk = p.add_argument_group("tokenizer")
    tk.add_argument("--tokenizer", default="word", metavar="word|bpe|hf:NAME",
                    help="word (SPEC §6), bpe (trained here), or hf:<hub name, folder or tokenizer.json> "
                    "(default word)")
    tk.add_argument("--vocab-size", type=int, metavar="K", help="K (default 3000 for word, 10000 for bpe)")
    tk.add_argument("--unk", action="store_true",
                    help="word: map out-of-vocabulary tokens to <unk> (last id) instead of dropping the document")
    sq = p.add_argument_group("sequences")
    sq.add_argument("--seq-len", type=int, default=64, metavar="T", help="T; rows hold T+1 tokens (default 64)")
    sq.add_argument("--pack", action="store_true",
                    help="pack the token stream into windows instead of one truncated sequence per document")
    sq.add_argument("--stride", type=int, metavar="S", help="with --pack: window start spacing (default T+1)")
    sq.add_argument("--max-sequences", type=int, metavar="N", help="keep at most N training sequences")
    sq.add_argument("--val-fraction", type=float, default=0.0, metavar="F",
                    help="share of documents held out for validation (val_tokens.npy; default 0)")
    sq.add_argument("--seed", type=int, default=0, help="seed of the validation split (default 0)")
    p.add_argument("--out", default="corpus", metavar="DIR", help="token store folder (default ./corpus)")
    p.add_argument("--force", action="store_true",
                   help="rebuild even if DIR holds a store built from the same inputs")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> CorpusConfig:
    fields = CorpusConfig.__dataclass_fields__
    return CorpusConfig(**{k: getattr(args, k) for k in fields if hasattr(args, k)})


def run(args: argparse.Namespace) -> int:
    result = build(config_from_args(args), args.out)
    if result.reused:
        print(f"reusing the token store in {args.out} (same inputs and settings; --force rebuilds)")
    print(summary(result.store))
    return 0
