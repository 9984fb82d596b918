"""Shared set-up of the test suite.

Layout (tests by kind; ``unit/`` mirrors the package layout):

- ``reference/``: independent naive implementations (dense float64 model and statistics, word
  tokenizer, tiny Hugging Face models) that share no code with the package;
- ``fixtures/``: shared pytest fixtures (token stores, tiny pretrained models), loaded as plugins;
- ``unit/``: the library's functions (marker ``unit``);
- ``integration/``: the ``leadingterms`` commands through ``leadingterms.cli.main`` (marker ``integration``);
- ``faults/``: fault injection (marker ``faults``): each case runs a command on a copy of a prepared
  workspace after injecting a fault and is classified (traceback / silently wrong / data loss /
  unclear / ok); ``tests/faults/campaign.py`` runs every case in its own process;
- ``e2e/``: one demo run end to end (marker ``e2e``).

Tests of a second or more (processes, Dask clusters, browsers, real corpora) are also marked
``slow``. The fast loop is ``pytest -m "not e2e and not slow"``; ``make test`` runs everything.

Offline HF, no progress bars, the shared corpora under ../shared/data (skipped when absent).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LEADINGTERMS_NO_PROGRESS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# datasets caches what load_dataset("json", ...) builds: keep it out of the user's ~/.cache
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="leadingterms-hf-datasets-"))

pytest_plugins = ["fixtures.stores", "fixtures.runs", "fixtures.pretrained", "fixtures.kernels"]

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
TINYSTORIES = SHARED_DATA / "tinystories-train-head-2MiB.txt.xz"
WIKITEXT = SHARED_DATA / "wikitext-2-valid.tokens.txt.xz"
KINDS = ("unit", "integration", "faults", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its kind, from its folder (tests/unit, tests/integration, tests/faults, tests/e2e)."""
    for item in items:
        kind = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))


@pytest.fixture
def tinystories_path() -> Path:
    if not TINYSTORIES.is_file():
        pytest.skip(f"shared corpus absent: {TINYSTORIES}")
    return TINYSTORIES


@pytest.fixture
def wikitext_path() -> Path:
    if not WIKITEXT.is_file():
        pytest.skip(f"shared corpus absent: {WIKITEXT}")
    return WIKITEXT
