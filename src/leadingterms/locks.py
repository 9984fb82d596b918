"""One writer per output: an advisory lock held while a command writes an output folder or file.

The lock is ``fcntl.flock`` on a small file (``DIR/.leadingterms.lock`` for a folder output,
``.NAME.lock`` next to a file output) that also records who holds it (pid, command, start time).
The kernel releases the lock when its process dies, so a lock left behind by a killed process is
stale by construction: the next writer takes it over (and removes the dead writer's temporary
files). A second live writer gets a one-line error naming the process that holds the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from leadingterms.errors import LeadingTermsError
from leadingterms.persist import remove_stale_temps

LOCK_NAME = ".leadingterms.lock"


def lock_path(target: str | os.PathLike[str], *, folder: bool) -> Path:
    """Where the lock of ``target`` lives: inside a folder output, next to a file output."""
    t = Path(target)
    return t / LOCK_NAME if folder else t.parent / f".{t.name}.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another process"
    if not isinstance(info, dict):
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info.get("time", 0))))
    return f"process {info.get('pid', '?')} ({info.get('command', '?')}, since {since})"


@contextlib.contextmanager
def output_lock(target: str | os.PathLike[str], *, folder: bool = True, what: str = "output",
                claim: Callable[[], None] | None = None) -> Iterator[Path]:
    """Hold the write lock of ``target`` (creating the folder, or the file's parent, if needed).

    Raises a one-line :class:`LeadingTermsError` when another live process holds it. ``claim``, the
    command's overwrite check of ``target`` (it raises to refuse), runs once the lock is held: what
    another writer finished since the command last looked is seen there (callers also run it before,
    to fail before reading their inputs). On entry, the temporary files of interrupted writes are
    removed: every one in a folder output (nobody else can be writing there), only the file's own
    (``.NAME.*.tmp``) for a file output."""
    t = Path(target)
    if folder and t.exists() and not t.is_dir():
        raise LeadingTermsError(f"{what} {t} exists and is not a folder")
    lp = lock_path(t, folder=folder)
    try:
        lp.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lp, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LeadingTermsError(f"cannot lock {what} {t}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LeadingTermsError(
                f"{what} {t} is being written by {_holder(lp)}; wait for it to finish or stop it") from None
        if claim is not None:
            claim()
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "command": " ".join(["leadingterms", *sys.argv[1:]])[:200],
                                 "time": time.time()}).encode())
        remove_stale_temps(lp.parent, None if folder else t.name)
        yield lp
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def new_output(target: str | os.PathLike[str], *, what: str = "output",
               claim: Callable[[], None] | None = None) -> Iterator[Path]:
    """:func:`output_lock` on a folder output that may not exist yet: when the command fails and the
    folder it created holds nothing but the lock file, the folder is removed again (a refused command
    leaves no trace)."""
    t = Path(target)
    created = not t.exists()
    try:
        with output_lock(t, folder=True, what=what, claim=claim) as lp:
            yield lp
    except BaseException:
        if created and t.is_dir() and [p.name for p in t.iterdir()] == [LOCK_NAME]:
            (t / LOCK_NAME).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                t.rmdir()
        raise
