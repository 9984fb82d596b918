from leadingterms.cli import main


def test_no_command_prints_help(capsys):
    assert main([]) == 2


def test_unknown_command_one_line(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err


def test_the_console_script_exits_with_the_commands_status(tmp_path):
    """``leadingterms`` / ``python -m leadingterms`` (cli.run): main's exit status, output flushed."""
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "leadingterms", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.strip()
    bad = subprocess.run([sys.executable, "-m", "leadingterms", "stats", "--corpus", str(tmp_path / "none"),
                          "--out", str(tmp_path / "b")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "error" in bad.stderr
