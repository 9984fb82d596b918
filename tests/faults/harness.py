"""Fault-injection harness: run a command on a copy of a prepared workspace after injecting a fault,
and classify what happened.

A :class:`Case` names a fault class, how to inject it (``setup`` mutates the workspace, ``env``
adds variables, ``argv`` is the command with ``{W}`` for the workspace folder) and what a correct
tool does (``expect``: ``"refuse"`` = exit 2 with one stderr line ``leadingterms CMD: error: ...``
containing ``match``; ``"ok"`` = exit 0, then ``check`` may look for a silently wrong result).

Outcomes (:func:`classify`):

- ``traceback``: a Python traceback on stderr, or an exit code other than 0, 2 or 130;
- ``silently wrong``: a fault that had to be refused exited 0, or ``check`` found a wrong result;
- ``data loss``: a file that existed before the command (other than the outputs the case allows to
  change) is gone or has other bytes after a refused command, or after any command when the case
  says no existing file may change;
- ``unclear``: refused, but with several stderr lines or without the expected words;
- ``ok``: what the case expects.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OUTCOMES = ("ok", "traceback", "silently wrong", "data loss", "unclear")
#: Held while a command runs inside this process (setups, in-process cases): sys.stdout, sys.stderr,
#: the working directory and os.environ are process-wide, so the campaign's threads take turns.
_IN_PROCESS = threading.RLock()


@dataclass
class Case:
    name: str
    klass: str
    argv: Sequence[str]
    expect: str = "refuse"  # or "ok"
    match: str | None = None
    setup: Callable[[Path], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    check: Callable[[Path, subprocess.CompletedProcess[str]], str | None] | None = None
    may_change: Sequence[str] = ()  # workspace-relative globs the command may legitimately rewrite
    run: Callable[[Path, list[str], dict[str, str]], subprocess.CompletedProcess[str]] | None = None
    timeout: float = 300.0
    ci: bool = True  # also run in-process by tests/faults/test_campaign_cases.py (fast cases only)


@dataclass
class Result:
    case: Case
    outcome: str
    detail: str
    returncode: int
    stderr: str


def snapshot(root: Path) -> dict[str, str]:
    """workspace-relative path -> sha256 of every file (lock files excluded)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.endswith(".lock"):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run_command(workspace: Path, argv: list[str], env: dict[str, str], timeout: float = 300.0
                ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "LEADINGTERMS_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.run([sys.executable, "-m", "leadingterms", *argv], cwd=workspace, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def run_in_process(workspace: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Like :func:`run_command` but calling ``leadingterms.cli.main`` in this process (fast; for tests).
    An exception escaping ``main`` is reported as a traceback on stderr."""
    with _IN_PROCESS:
        return _run_in_process(workspace, argv, env)


def _run_in_process(workspace: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import contextlib
    import io
    import traceback

    from leadingterms.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_env = {k: os.environ.get(k) for k in env}
    old_cwd = os.getcwd()
    os.environ.update(env)
    os.chdir(workspace)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = int(exc.code or 0) if not isinstance(exc.code, str) else 2
            except BaseException:  # noqa: BLE001 - what the harness is looking for
                traceback.print_exc()
                rc = 1
    finally:
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(argv, rc, out.getvalue(), err.getvalue())


def _allowed(rel: str, globs: Sequence[str]) -> bool:
    return any(Path(rel).match(g) or rel.startswith(g.rstrip("*")) for g in globs)


def classify(case: Case, ws: Path, before: dict[str, str], proc: subprocess.CompletedProcess[str]) -> Result:
    err_lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    def res(outcome: str, detail: str) -> Result:
        return Result(case, outcome, detail, proc.returncode, proc.stderr[-2000:])

    if "Traceback (most recent call last)" in proc.stderr or proc.returncode not in (0, 2, 130):
        last = err_lines[-1] if err_lines else f"exit {proc.returncode}"
        return res("traceback", last[:200])
    after = snapshot(ws)
    changed = [k for k, h in before.items() if after.get(k) != h and not _allowed(k, case.may_change)]
    if proc.returncode == 2:
        if changed:
            return res("data loss", f"refused but changed {changed[:3]}")
        errs = [ln for ln in err_lines if ": error: " in ln]
        if len(errs) != 1 or (case.match is not None and case.match not in errs[0]):
            return res("unclear" if case.expect == "refuse" else "silently wrong", " | ".join(err_lines)[:300])
        if case.expect == "ok":
            return res("silently wrong", f"refused a valid request: {errs[0][:200]}")
        return res("ok", errs[0][:200])
    if case.expect == "refuse":
        return res("silently wrong", "exit 0 where the fault had to be refused")
    if changed:
        return res("data loss", f"changed {changed[:3]}")
    problem = case.check(ws, proc) if case.check else None
    return res("silently wrong", problem) if problem else res("ok", "exit 0 as expected")


def run_case(case: Case, base: Path, scratch: Path, *, in_process: bool = False) -> Result:
    ws = scratch / case.name
    if ws.exists():
        shutil.rmtree(ws)
    shutil.copytree(base, ws, symlinks=True)
    if case.setup is not None:
        with _IN_PROCESS:  # a setup may run a command in this process (redirecting sys.stdout)
            case.setup(ws)
    before = snapshot(ws)
    argv = [a.replace("{W}", str(ws)) for a in case.argv]
    default = run_in_process if in_process else (lambda w, a, e: run_command(w, a, e, case.timeout))
    try:
        proc = (case.run or default)(ws, argv, case.env)
    except subprocess.TimeoutExpired:
        return Result(case, "traceback", f"timed out after {case.timeout} s", -1, "")
    result = classify(case, ws, before, proc)
    if result.outcome == "ok":
        shutil.rmtree(ws, ignore_errors=True)
    return result
