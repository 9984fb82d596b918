"""Fault-injection campaign: every case of every ``tests/faults/cases_*.py`` module, each in a fresh
copy of the prepared workspace, each command in its own process (as a user meets it).

    .venv/bin/python tests/faults/campaign.py [-j JOBS] [--only SUBSTRING] [--markdown FILE]

Prints one line per case that is not ``ok`` and the table of outcomes per fault class; exits 1
when any case is a traceback, silently wrong or data loss. A ``cases_*.py`` module defines
``cases() -> list[Case]`` (see :mod:`faults.harness`); its argv uses ``{W}`` for the
workspace copy.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the tests folder is the import root, as under pytest
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults.harness import OUTCOMES, Case, Result, run_case  # noqa: E402
from faults.workspace import build_workspace  # noqa: E402


def all_cases() -> list[Case]:
    """The cases of every ``faults.cases_*`` module, names unique."""
    import faults as pkg

    cases: list[Case] = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.startswith("cases_")):
        cases.extend(importlib.import_module(f"faults.{mod}").cases())
    names = Counter(c.name for c in cases)
    dup = [n for n, k in names.items() if k > 1]
    if dup:
        raise SystemExit(f"campaign: duplicate case names {dup[:5]}")
    return cases


def table(results: list[Result]) -> str:
    """Markdown table: fault class x outcome counts, with a total row."""
    classes = sorted({r.case.klass for r in results})
    head = "| class | cases | " + " | ".join(OUTCOMES) + " |\n|---|---:|" + "---:|" * len(OUTCOMES) + "\n"
    rows = []
    for k in [*classes, "total"]:
        rs = results if k == "total" else [r for r in results if r.case.klass == k]
        c = Counter(r.outcome for r in rs)
        name = f"**{k}**" if k == "total" else k
        rows.append(f"| {name} | {len(rs)} | " + " | ".join(str(c.get(o, 0)) for o in OUTCOMES) + " |")
    return head + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--only", default=None, help="run the cases whose name contains this")
    ap.add_argument("--markdown", default=None, help="also write the table and failures to this file")
    ap.add_argument("--keep", default=None, help="scratch folder to keep (default: a temp folder)")
    args = ap.parse_args(argv)
    cases = [c for c in all_cases() if args.only is None or args.only in c.name]
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(args.keep or tmp)
        base = build_workspace(scratch / "_base")
        print(f"workspace built in {time.time() - t0:.1f} s; {len(cases)} cases, {args.jobs} at a time",
              file=sys.stderr)
        with ThreadPoolExecutor(args.jobs) as ex:
            results = list(ex.map(lambda c: run_case(c, base, scratch), cases))
    bad = [r for r in results if r.outcome != "ok"]
    for r in bad:
        print(f"[{r.outcome}] {r.case.name} ({r.case.klass}): {r.detail}")
    text = table(results)
    print(text)
    print(f"{len(results)} cases in {time.time() - t0:.0f} s")
    if args.markdown:
        import os
        import platform

        cmd = " ".join(["tests/faults/campaign.py", *(argv if argv is not None else sys.argv[1:])])
        head = [f"# Fault-injection campaign\n\n_Command:_ `.venv/bin/python {cmd}`  ",
                f"_When:_ {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
                f"_Machine:_ {platform.machine()}, {os.cpu_count()} cores; {len(results)} cases in "
                f"{time.time() - t0:.0f} s, each command in its own process on a fresh copy of the workspace "
                "(tests/faults/workspace.py)\n",
                "Outcomes (tests/faults/harness.py): ok = refused in one clear line (exit 2) with every existing "
                "file unchanged, or correct; traceback; silently wrong = exit 0 where the fault had to be refused, "
                "or a wrong result; data loss = an existing file changed or gone; unclear = refused but not in one "
                "line naming the problem.\n"]
        lines = [*head, text, *(f"- [{r.outcome}] `{r.case.name}`: {r.detail}" for r in bad)]
        Path(args.markdown).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 1 if any(r.outcome in ("traceback", "silently wrong", "data loss") for r in bad) else 0


if __name__ == "__main__":
    raise SystemExit(main())
