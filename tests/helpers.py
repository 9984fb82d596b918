"""Helpers shared by the tests (not fixtures): running the CLI and checking one-line errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
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
    (containing ``match`` when given) besides the command's notes (``leadingterms CMD: note: ...``,
    printed before it) -> that line."""
    rc, out, err = run_cli(capsys, *argv)
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(f"leadingterms {argv[0]}: note: ")]
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"leadingterms {argv[0]}: error: "), err
    if match is not None:
        assert match in lines[0], (match, lines[0])
    return lines[0]


def chromium() -> str | None:
    """A headless-capable Chromium (or Chrome) on this machine, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if p:
            return p
    return None


CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars"]


def render_in_chromium(page: Path, tmp: Path, *, min_images: int = 1) -> None:
    """Open ``page`` in headless Chromium (skip the test when there is none): no console error, nothing that
    failed to load, a non-blank screenshot, and every image decoded (a probe script counts them)."""
    chrome = chromium()
    if chrome is None:
        pytest.skip("Chromium not installed (apt-get install chromium); the browser check is skipped")
    shot = tmp / f"{page.stem}-shot.png"
    proc = subprocess.run([chrome, *CHROME_FLAGS, f"--user-data-dir={tmp / 'chrome-ud1'}", "--enable-logging=stderr",
                           "--v=0", f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000, proc.stderr[-2000:]
    for bad in ("Uncaught", "ERROR:CONSOLE", "net::ERR_", "Failed to load resource"):
        assert bad not in proc.stderr, [line for line in proc.stderr.splitlines() if bad in line][:5]
    probe = tmp / f"{page.stem}-probe.html"
    script = ("<script>window.addEventListener('load',function(){var im=Array.from(document.images);"
              "var ok=im.filter(function(i){return i.complete&&i.naturalWidth>0;}).length;"
              "document.body.setAttribute('data-probe','imgs='+im.length+' ok='+ok);});</script>")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    dom = subprocess.run([chrome, *CHROME_FLAGS, f"--user-data-dir={tmp / 'chrome-ud2'}",
                          "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-probe="imgs=(\d+) ok=(\d+)"', dom)
    assert m, dom[-500:]
    n, ok = int(m.group(1)), int(m.group(2))
    assert n >= min_images and ok == n, (n, ok)
