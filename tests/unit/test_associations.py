"""Association readouts: ordering, rows vs columns, derived vectors vs full naive products."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference.naive import NaiveBasis, markov_corpus

from leadingterms.associations import (
    BASIS_NAMES,
    association_table,
    basis_associations,
    basis_vector,
    token_index,
    top_associations,
)
from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import overlap_at_k

V_ = 10
VOCAB = ["the", "bird", "flew", "away", "cat", "sat", "on", "mat", "dog", "ran"]


@pytest.fixture(scope="module")
def basis() -> NaiveBasis:
    return NaiveBasis(markov_corpus(V_, 7, 30, seed=5), V_, vocab=VOCAB)


def full_matrix(b: NaiveBasis, name: str) -> torch.Tensor:
    """Each basis matrix formed densely (naive products)."""
    return {
        "bigram": b.B_bar,
        "context": b.Phi_bar,
        "value": b.Phi_bar.T @ b.B_bar.T,
        "attention": b.Q_bar,
        "interchange-next": b.B_bar.T @ b.B_bar,
        "interchange-prev": b.B_bar @ b.B_bar.T,
        "composition": b.Phi_bar.T @ b.B_bar.T @ b.B_bar,
    }[name]


@pytest.mark.parametrize("name", BASIS_NAMES)
def test_derived_vectors_equal_full_product(basis: NaiveBasis, name: str) -> None:
    M = full_matrix(basis, name)
    assert float(M.abs().max()) > 0
    for i in range(V_):
        assert torch.allclose(basis_vector(basis, name, i), M[i, :], rtol=1e-12, atol=1e-17), (name, i)
        assert torch.allclose(basis_vector(basis, name, i, column=True), M[:, i], rtol=1e-12, atol=1e-17)


def test_top_associations_order_and_column() -> None:
    M = torch.zeros(4, 4, dtype=torch.float64)
    vocab = ["a", "b", "c", "d"]
    M[1] = torch.tensor([0.5, -1.0, 2.0, 0.5])  # row of "b"
    M[:, 3] = torch.tensor([3.0, 0.5, -2.0, 1.0])  # column of "d" (overwrites M[1, 3] = 0.5)
    assert top_associations(M, vocab, "b", k=3) == [("c", 2.0), ("a", 0.5), ("d", 0.5)]  # tie: smaller id first
    assert top_associations(M, vocab, "d", k=2, column=True) == [("a", 3.0), ("d", 1.0)]
    assert top_associations(M, vocab, "b", k=10) == [("c", 2.0), ("a", 0.5), ("d", 0.5), ("b", -1.0)]
    with pytest.raises(LeadingTermsError):
        top_associations(M, vocab, "b", k=0)
    with pytest.raises(LeadingTermsError):
        top_associations(M[:3, :3], vocab, "b")


def test_basis_associations_matches_sorting_the_full_row(basis: NaiveBasis) -> None:
    for name in BASIS_NAMES:
        for column in (False, True):
            M = full_matrix(basis, name)
            got = basis_associations(basis, VOCAB, name, "bird", k=4, column=column)
            vec = (M[:, 1] if column else M[1, :]).numpy()
            order = np.argsort(-vec, kind="stable")[:4]
            assert [t for t, _ in got] == [VOCAB[i] for i in order]
            assert np.allclose([v for _, v in got], vec[order], rtol=1e-12, atol=1e-17)
            assert all(a >= b for (_, a), (_, b) in zip(got, got[1:], strict=False))
    excl = basis_associations(basis, VOCAB, "interchange-next", "bird", k=V_, exclude_self=True)
    assert len(excl) == V_ - 1 and "bird" not in [t for t, _ in excl]


def test_unknown_token_suggests_close_matches(basis: NaiveBasis) -> None:
    with pytest.raises(LeadingTermsError, match="did you mean 'bird'") as e:
        basis_associations(basis, VOCAB, "bigram", "brid")
    assert "\n" not in str(e.value)
    with pytest.raises(LeadingTermsError, match="not in the vocabulary"):
        token_index(VOCAB, "zzzzzz")
    with pytest.raises(LeadingTermsError, match="unknown basis"):
        basis_vector(basis, "nope", 0)


def test_association_table(basis: NaiveBasis) -> None:
    learned = {"W_O": basis.B_bar * 2.0}
    rows = association_table(basis, VOCAB, ["bird", "cat"], names=["bigram", "value"], learned=learned, k=3)
    assert len(rows) == (2 + 1) * 2 * 2 * 3
    assert set(rows[0]) == {"basis", "token", "direction", "rank", "other", "value"}
    sel = [r for r in rows if r["basis"] == "value" and r["token"] == "cat" and r["direction"] == "column"]
    assert [r["rank"] for r in sel] == [1, 2, 3]
    ref = basis_associations(basis, VOCAB, "value", "cat", k=3, column=True)
    assert [(r["other"], r["value"]) for r in sel] == ref
    # learned W_O = 2 B_bar: same tokens as the bigram basis, doubled values
    lw = [r for r in rows if r["basis"] == "W_O" and r["token"] == "bird" and r["direction"] == "row"]
    bg = [r for r in rows if r["basis"] == "bigram" and r["token"] == "bird" and r["direction"] == "row"]
    assert [r["other"] for r in lw] == [r["other"] for r in bg]
    assert [r["value"] for r in lw] == pytest.approx([2 * r["value"] for r in bg], rel=1e-15)
    with pytest.raises(LeadingTermsError):
        association_table(basis, VOCAB, ["bird"], directions=("diagonal",))


def test_overlap_at_k() -> None:
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 8, generator=g, dtype=torch.float64)
    assert overlap_at_k(A, A.clone(), k=3) == 1.0
    assert overlap_at_k(A, -A, k=4) == 0.0  # top-4 of -A are the bottom-4 of A
    assert overlap_at_k(A, 3 * A + 1, k=2, column=True) == 1.0  # monotone maps keep top-k
    B = A.clone()
    top2 = torch.sort(A[0], descending=True).indices[:2]
    B[0, top2[0]] = -100.0  # row 0 loses one of its top-2
    assert overlap_at_k(A, B, k=2, rows=[0]) == 0.5
    assert overlap_at_k(A, B, k=2) == pytest.approx((0.5 + 5) / 6)
    with pytest.raises(LeadingTermsError):
        overlap_at_k(A, A[:, :4], k=2)
    with pytest.raises(LeadingTermsError):
        overlap_at_k(A, A, k=9)


def test_an_unknown_token_of_a_top_k_basis_says_the_rest_are_other():
    from leadingterms.associations import token_index
    from leadingterms.errors import LeadingTermsError

    with pytest.raises(LeadingTermsError, match=r"unknown token 'girl'; it is not in the vocabulary \(this basis "
                                                r"keeps the 2 most frequent tokens, `stats --top-k`; the others are "
                                                r"'<other>'\)"):
        token_index(["the", "a", "<other>"], "girl")
