"""Run the benchmarks and record them in benchmarks/RESULTS.md.

Usage:  .venv/bin/python benchmarks/run.py [--only NAME ...] [--quick]

Each benchmark is ``benchmarks/bench_<NAME>.py`` exposing ``run(quick: bool) -> str``, which
times our code and the baseline it replaces *in the same run* and returns a Markdown section
(tables with ratios).  This script prints each section and replaces that section in
RESULTS.md (between ``<!-- bench:NAME -->`` markers), stamped with the command and machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["tokenize", "basis", "train_step", "associations", "horizons"]


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def update_results(name: str, body: str, command: str) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n\nEach section: the command, the machine, the figures.\n"
    stamp = f"_Command:_ `{command}`  \n_When:_ {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC  \n_Machine:_ {machine()}\n\n"
    block = f"<!-- bench:{name} -->\n{stamp}{body.strip()}\n<!-- /bench:{name} -->"
    pat = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pat.sub(lambda _: block, text) if pat.search(text) else text.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=BENCHES, default=BENCHES)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (smoke run); RESULTS.md is not touched")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_"))
    command = (env + " " if env else "") + "python benchmarks/run.py " + " ".join(sys.argv[1:])
    for name in args.only:
        mod = importlib.import_module(f"bench_{name}")
        print(f"\n## {name}\n", flush=True)
        body = mod.run(quick=args.quick)
        print(body, flush=True)
        if not args.quick:
            # sections measured with BENCH_* overrides (another corpus or size) are kept apart
            update_results(f"{name} {env}" if env else name, body, command.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
