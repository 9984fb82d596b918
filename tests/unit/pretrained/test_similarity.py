"""Gram similarity (docs/theory.md §8) against naive float64 loops."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference.ptiny import naive_gram, naive_similarity

from leadingterms.pretrained.similarity import (
    centred_gram,
    double_centre,
    frobenius_cosine,
    gram_similarity,
    row_normalize,
    target_gram,
)


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@settings(max_examples=12, deadline=None)
@given(n=st.integers(2, 7), m=st.integers(2, 9), seed=st.integers(0, 10_000))
def test_centred_gram_matches_loops(n, m, seed):
    S = np.random.default_rng(seed).normal(size=(n, m))
    assert rel(centred_gram(torch.from_numpy(S)).numpy(), naive_gram(S)) < 1e-12


@settings(max_examples=12, deadline=None)
@given(n=st.integers(2, 7), m=st.integers(2, 9), r=st.integers(1, 4), seed=st.integers(0, 10_000))
def test_factored_gram_equals_gram_of_product(n, m, r, seed):
    rng = np.random.default_rng(seed)
    X, R = rng.normal(size=(n, r)), rng.normal(size=(m, r)) + rng.normal(size=(1, r))  # keys with a common offset
    G = centred_gram(torch.from_numpy(X), torch.from_numpy(R)).numpy()
    assert rel(G, naive_gram(X @ R.T)) < 1e-10


def test_target_gram_normalises_rows_first():
    rng = np.random.default_rng(0)
    S = rng.normal(size=(6, 5)) * rng.uniform(0.1, 10, size=(6, 1))
    N = S / np.linalg.norm(S, axis=1, keepdims=True)
    assert rel(target_gram(torch.from_numpy(S)).numpy(), naive_gram(N)) < 1e-12
    Z = torch.zeros(3, 4)
    Z[0, 1] = 2.0
    assert torch.equal(row_normalize(Z)[1], torch.zeros(4))  # zero rows stay zero, no NaN


def test_self_similarity_is_one_and_scale_free():
    X = torch.randn(12, 9, dtype=torch.float64)
    G = centred_gram(X)
    assert abs(gram_similarity(G, G) - 1.0) < 1e-12
    assert abs(gram_similarity(3.5 * G, G) - 1.0) < 1e-12
    G2 = centred_gram(torch.randn(12, 9, dtype=torch.float64))
    assert abs(gram_similarity(G, G2) - naive_similarity(G.numpy(), G2.numpy())) < 1e-12
    assert frobenius_cosine(torch.zeros(3, 3), G[:3, :3]) == 0.0


def test_shuffling_token_rows_lowers_similarity():
    torch.manual_seed(0)
    # tokens with structure: 4 clusters of similar rows
    centers = torch.randn(4, 16, dtype=torch.float64)
    X = centers.repeat_interleave(5, 0) + 0.1 * torch.randn(20, 16, dtype=torch.float64)
    Y = X @ torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64))[0]  # rotated copy: same Gram up to centring
    G_target = centred_gram(X)
    same = gram_similarity(centred_gram(Y), G_target)
    perm = torch.randperm(20)
    shuffled = gram_similarity(centred_gram(Y[perm]), G_target)
    assert same > 0.9
    assert shuffled < same - 0.2


def test_double_centre_is_gram_of_token_centred_states():
    rng = np.random.default_rng(1)
    S = rng.normal(size=(7, 5)) + rng.normal(size=(1, 5)) * 3  # a direction shared by every token
    Sc = S - S.mean(axis=1, keepdims=True)
    Sc = Sc - Sc.mean(axis=0, keepdims=True)  # also centred over tokens
    want = Sc @ Sc.T / (5 - 1)
    got = double_centre(centred_gram(torch.from_numpy(S))).numpy()
    assert rel(got, want) < 1e-12
