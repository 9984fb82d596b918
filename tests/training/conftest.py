"""Tiny token stores for the training tests (Markov chains with strong bigrams)."""

from __future__ import annotations

from pathlib import Path

import pytest
from naive import markov_corpus

from leadingterms.corpus.store import TokenStore, write_store


def make_store(path: Path, N: int = 12, T: int = 6, V: int = 7, seed: int = 0, val: int = 0) -> TokenStore:
    tok = markov_corpus(V, T, N + val, seed=seed)  # ~2 likely successors per token
    return write_store(path, tok[:N], [f"w{i}" for i in range(V)], {"source": "test"},
                       val_tokens=tok[N:] if val else None)


@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    """N=12 training + 3 validation sequences, T=6, V=7."""
    return make_store(tmp_path / "corpus", val=3)


@pytest.fixture
def store_factory():
    """``make_store(path, N=, T=, V=, seed=, val=)`` for tests that need other sizes."""
    return make_store
