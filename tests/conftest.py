"""Shared fixtures: offline HF, no progress bars, paths to ../shared/data."""

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

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TINYSTORIES = SHARED_DATA / "tinystories-train-head-2MiB.txt.xz"
WIKITEXT = SHARED_DATA / "wikitext-2-valid.tokens.txt.xz"


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
