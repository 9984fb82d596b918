"""The prepared workspace every fault case starts from (a copy of it): a small text file, a corpus
store, its basis, a tracked training run with an intervention, and a tiny pretrained suite.

Built once through the CLI (in this process), then copied per case by :func:`harness.run_case`.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from leadingterms.cli import main

#: Files and folders of the workspace, relative to its root.
TEXT = "text.txt"
CORPUS = "corpus"
BASIS = "basis"
RUN = "run"
SUITE = "suite"


def _sentences(n: int) -> str:
    subjects = ["the bird", "a cat", "the old dog", "my friend", "the small fish", "a girl"]
    verbs = ["flew", "ran", "sat", "swam", "sang", "slept"]
    places = ["over the hill", "in the garden", "by the river", "under the tree", "at home"]
    docs = []
    for i in range(n):
        s = subjects[i % len(subjects)]
        v = verbs[(i * 7) % len(verbs)]
        p = places[(i * 3) % len(places)]
        docs.append(f"{s} {v} {p} . then {subjects[(i + 2) % len(subjects)]} {verbs[i % len(verbs)]} too .")
    return "\n\n".join(docs) + "\n"


def _cli(*argv: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(list(argv))
    if rc != 0:
        raise RuntimeError(f"workspace: leadingterms {' '.join(argv)} exited {rc}")


def build_workspace(root: Path, *, suite: bool = True) -> Path:
    """Create the workspace under ``root`` (created) and return it."""
    root.mkdir(parents=True, exist_ok=True)
    (root / TEXT).write_text(_sentences(120), encoding="utf-8")
    _cli("corpus", "--text", str(root / TEXT), "--seq-len", "12", "--out", str(root / CORPUS))
    _cli("stats", "--corpus", str(root / CORPUS), "--out", str(root / BASIS))
    _cli("train", "--corpus", str(root / CORPUS), "--stats", str(root / BASIS), "--layers", "1", "--lr", "0.5",
         "--batch-size", "8", "--steps", "12", "--log-every", "4", "--out", str(root / RUN))
    _cli("intervene", "--run", str(root / RUN), "--max-sequences", "16")
    if suite:
        _cli("pretrain-small", "--text", str(root / TEXT), "--out", str(root / SUITE), "--steps", "4",
             "--layers", "1", "--d-model", "16", "--heads", "2", "--vocab-size", "200", "--seq-len", "12",
             "--batch-size", "4")
    return root
