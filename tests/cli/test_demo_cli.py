from __future__ import annotations

import pytest

from leadingterms.cli import main


def test_demo_cli_bad_args_one_line(capsys, tmp_path):
    assert main(["demo", "--out", str(tmp_path / "d"), "--steps", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--steps must be a positive integer" in err
    with pytest.raises(SystemExit) as e:
        main(["demo", "--lr", "fast"])
    assert e.value.code == 2


def test_demo_cli_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    for opt in ("--out", "--docs", "--lr", "--steps", "--batch-size"):
        assert opt in out


def test_demo_cli_tiny_run(capsys, tmp_path):
    out = tmp_path / "d"
    rc = main(["demo", "--out", str(out), "--docs", "20", "--seq-len", "12", "--layers", "1", "--steps", "2",
               "--batch-size", "10", "--log-every", "1", "--heatmap-tokens", "6"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert 1 <= len(lines) <= 10
    assert lines[0] == f"report: {out / 'run' / 'report.html'}"
    assert (out / "run" / "report.html").is_file() and (out / "run" / "intervention.json").is_file()
