"""Campaign cases: a first example per outcome (kept small; the areas add their own modules)."""

from __future__ import annotations

from faults.harness import Case


def cases() -> list[Case]:
    return [
        Case("stats-missing-corpus", "missing input", ["stats", "--corpus", "{W}/nope", "--out", "{W}/b2"],
             match="nope"),
        Case("stats-same-inputs-reuse", "overwrite policy", ["stats", "--corpus", "{W}/corpus", "--out", "{W}/basis"],
             expect="ok"),
    ]
