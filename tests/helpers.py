"""Helpers shared by the tests (not fixtures): running the CLI and checking one-line errors."""

from __future__ import annotations

from typing import Any

import pytest

from leadingterms.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    """``leadingterms ARGV`` in-process -> (exit code, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(capsys: pytest.CaptureFixture[str], *argv: Any, match: str | None = None) -> str:
    """Run the CLI, require exit code 2 and exactly one stderr line ``leadingterms CMD: error: ...``
    (containing ``match`` when given) and nothing on stdout -> that line."""
    rc, out, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"leadingterms {argv[0]}: error: "), err
    if match is not None:
        assert match in lines[0], (match, lines[0])
    return lines[0]
