"""The public API: ``import leadingterms`` exposes the documented entry points, lazily."""

from __future__ import annotations

import subprocess
import sys

import leadingterms


def test_every_public_name_resolves():
    for name in leadingterms.__all__:
        assert getattr(leadingterms, name) is not None, name
    assert {"run_corpus", "run_stats", "train", "load_run", "closed_form", "build_report"} <= set(leadingterms.__all__)


def test_import_is_cheap():
    code = "import sys, leadingterms; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_loaders_accept_the_folder_or_a_file_in_it(run_factory):
    run = run_factory("api", steps=1)
    root = run.parent
    assert leadingterms.load_basis(root / "stats" / "basis.safetensors").V == leadingterms.load_basis(root / "stats").V
    assert leadingterms.load_store(root / "corpus" / "corpus.json").N == leadingterms.load_store(root / "corpus").N
    assert leadingterms.load_run(run / "config.json").path == run
