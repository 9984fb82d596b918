"""Tiny token stores for the training tests (Markov chains with strong bigrams)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leadingterms.corpus.store import TokenStore, write_store


def markov_tokens(N: int, T: int, V: int, seed: int) -> np.ndarray:
    """(N, T+1) sequences of a random sparse Markov chain (each token has ~2 likely successors)."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.full(V, 0.3), size=V)
    out = np.empty((N, T + 1), dtype=np.int64)
    for i in range(N):
        out[i, 0] = rng.integers(V)
        for t in range(T):
            out[i, t + 1] = rng.choice(V, p=P[out[i, t]])
    return out


def make_store(path: Path, N: int = 12, T: int = 6, V: int = 7, seed: int = 0, val: int = 0) -> TokenStore:
    tok = markov_tokens(N + val, T, V, seed)
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
