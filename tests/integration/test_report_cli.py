from __future__ import annotations

import pytest

from leadingterms.cli import main


@pytest.fixture(scope="module")
def tiny_run(run_factory):
    return run_factory("rp", layers=1, steps=2)


@pytest.mark.slow
def test_report_cli_writes_self_contained_page(capsys, tiny_run):
    assert main(["report", "--run", str(tiny_run), "--heatmap-tokens", "6", "--tokens", "bird,the", "--k", "3"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith(str(tiny_run / "report.html"))
    html = (tiny_run / "report.html").read_text(encoding="utf-8")
    assert "Not computed: run <code>leadingterms intervene" in html  # no intervention.json yet
    assert 'src="http' not in html and "<link" not in html


@pytest.mark.parametrize("args, msg", [
    (["--tokens", "notaword"], "unknown token 'notaword'"),
    (["--k", "0"], "--k must be a positive integer"),
    (["--step", "9"], "no checkpoint at step 9"),
    (["--step", "0"], "--step 0 is the initialisation (nothing learned yet); choose a later checkpoint"),
])
def test_report_cli_errors_one_line(capsys, tiny_run, args, msg):
    assert main(["report", "--run", str(tiny_run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and msg in err


def test_report_cli_missing_run(capsys, tmp_path):
    assert main(["report", "--run", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
