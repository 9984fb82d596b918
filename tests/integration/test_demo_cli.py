from __future__ import annotations

from leadingterms.cli import main


def test_demo_cli_bad_args_one_line(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path / "d"), "--steps", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--steps must be a positive integer" in err
    assert main(["demo", "--lr", "fast"]) == 2


def test_demo_cli_help_lists_options(capsys):
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--out", "--synthetic-docs", "--lr", "--steps", "--batch-size"):
        assert opt in out
