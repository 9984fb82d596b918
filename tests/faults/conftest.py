"""Fixtures of the fault-injection tests: one prepared workspace per session, cases run in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from faults.harness import Case, Result, run_case
from faults.workspace import build_workspace


@pytest.fixture(scope="session")
def fault_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prepared workspace (text, corpus, basis, run with intervention, pretrained suite); read-only."""
    return build_workspace(tmp_path_factory.mktemp("fault-workspace"))


@pytest.fixture
def run_fault(fault_workspace: Path, tmp_path: Path) -> Callable[[Case], Result]:
    """``run_fault(case)`` -> the classified :class:`Result` of ``case`` on a fresh copy of the workspace
    (in this process: fast; the campaign runs the same cases in subprocesses)."""
    def run(case: Case) -> Result:
        return run_case(case, fault_workspace, tmp_path, in_process=True)

    return run
