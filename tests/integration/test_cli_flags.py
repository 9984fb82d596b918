"""Every command's options come from its config: one spelling per concept across commands."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import pytest
from helpers import run_cli

from leadingterms.cli import build_parser, commands
from leadingterms.config import cli_fields, field_default
from leadingterms.corpus.sources import SourceConfig
from leadingterms.validate import flag


def command_flags() -> dict[str, dict[str, str]]:
    """command -> {field name: its option string (or the positional's name)}."""
    out: dict[str, dict[str, str]] = {}
    for cmd in commands():
        out[cmd.name] = {f.name: (f.metadata["flag"] or flag(f.name)) if not f.metadata["positional"] else f.name
                         for f, _ in cli_fields(cmd.config)}
    return out


def test_one_spelling_per_concept_and_one_concept_per_spelling():
    by_field: dict[str, set[str]] = defaultdict(set)
    by_flag: dict[str, set[str]] = defaultdict(set)
    for flags in command_flags().values():
        for name, opt in flags.items():
            by_field[name].add(opt)
            by_flag[opt].add(name)
    assert {k: v for k, v in by_field.items() if len(v) > 1} == {}
    assert {k: v for k, v in by_flag.items() if len(v) > 1} == {}


def test_retired_spellings_are_gone():
    every = {opt for flags in command_flags().values() for opt in flags.values()}
    for old in ("--max-docs", "--corpus-text", "--text-column", "--overwrite", "--docs"):
        assert old not in every, old


def test_corpus_source_flags_are_shared():
    source = {f.name for f in dataclasses.fields(SourceConfig)}
    flags = command_flags()
    for name in ("corpus", "pretrain-small", "compare-pretrained"):
        assert source <= set(flags[name]), name
    for name, f in flags.items():  # no command spells a source concept its own way
        assert not ({"max_docs", "corpus_text", "text_column"} & set(f)), name


def test_out_run_force_vocabulary():
    flags = command_flags()
    creates = {"corpus", "stats", "predict", "train", "compare-pretrained", "pretrain-small", "demo"}
    assert all("out" in flags[c] for c in creates)
    assert all("run" in flags[c] for c in ("intervene", "report"))
    assert all("force" in flags[c] for c in ("corpus", "stats", "train"))


def test_required_options_are_shown_required(capsys):
    for cmd in commands():
        parser = build_parser(only=cmd.name)
        sub = next(a for a in parser._actions if a.dest == "_command").choices[cmd.name]
        usage = sub.format_usage()
        for f, _ in cli_fields(cmd.config):
            md = f.metadata
            if field_default(f) is dataclasses.MISSING and not md["positional"]:
                opt = md["flag"] or flag(f.name)
                assert f"[{opt}" not in usage, (cmd.name, opt, usage)
                assert opt in usage, (cmd.name, opt, usage)


@pytest.mark.parametrize("name", [c.name for c in commands()])
def test_every_command_has_help(name, capsys):
    rc, out, _ = run_cli(capsys, name, "--help")
    assert rc == 0 and "usage:" in out


def test_options_are_not_abbreviated(tmp_path, capsys):
    """`sweep --lr 0.3` was taken as `--lrs 0.3` (argparse's prefix matching): an option is its full name."""
    rc, _, err = run_cli(capsys, "corpus", "--synthetic-docs", 5, "--seq", 8, "--out", tmp_path / "c")
    assert rc == 2 and "unrecognized arguments: --seq 8" in err
    rc, _, err = run_cli(capsys, "sweep", "--corpora", tmp_path, "--lr", "0.3", "--batch-sizes", 4,
                         "--layer-counts", 1, "--steps", 1, "--out", tmp_path / "sw")
    assert rc == 2 and "--lrs" in err
    assert not (tmp_path / "c").exists() and not (tmp_path / "sw").exists()
