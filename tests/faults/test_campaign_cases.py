"""Every campaign case of the ``cases_*`` modules whose ``ci`` flag is set, in-process: a case is
expected to come out ``ok`` (refused in one clear line, or correct, with no existing file changed)."""

from __future__ import annotations

import pytest

from faults.campaign import all_cases

CI_CASES = [c for c in all_cases() if c.ci]


@pytest.mark.parametrize("case", CI_CASES, ids=[c.name for c in CI_CASES])
def test_case_is_handled(case, run_fault):
    result = run_fault(case)
    assert result.outcome == "ok", f"{result.outcome}: {result.detail}\n{result.stderr}"
