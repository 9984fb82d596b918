"""The synthetic corpus: deterministic, long enough, ~300 word types, planted associations present."""

from __future__ import annotations

from collections import Counter

import pytest

from leadingterms.corpus.synthetic import generate_documents, planted_associations
from leadingterms.corpus.tokenizers import word_tokens
from leadingterms.errors import LeadingTermsError


@pytest.fixture(scope="module")
def docs() -> list[list[str]]:
    return [word_tokens(d) for d in generate_documents(600, seed=3)]


def test_deterministic_and_prefix_stable():
    a = generate_documents(50, seed=7)
    assert a == generate_documents(50, seed=7)
    assert a[:20] == generate_documents(20, seed=7)
    assert a != generate_documents(50, seed=8)
    assert len(set(a)) == 50  # no two stories alike
    with pytest.raises(LeadingTermsError):
        generate_documents(0)


def test_lengths_and_vocabulary(docs):
    assert min(len(d) for d in docs) >= 65  # enough for T = 64
    types = {t for d in docs for t in d}
    assert 250 <= len(types) <= 350


def test_planted_format():
    planted = planted_associations()
    assert {p["kind"] for p in planted} == {"bigram", "context"}
    for p in planted:
        assert set(p) == {"kind", "a", "b"}
        assert word_tokens(p["a"]) == [p["a"]] and word_tokens(p["b"]) == [p["b"]]


def test_planted_bigrams_present_and_dominant(docs):
    followers: dict[str, Counter[str]] = {}
    for d in docs:
        for a, b in zip(d, d[1:], strict=False):
            followers.setdefault(a, Counter())[b] += 1
    bigrams = [p for p in planted_associations() if p["kind"] == "bigram"]
    verbs = {p["b"] for p in bigrams}
    for p in bigrams:
        fol = followers[p["a"]]
        assert fol[p["b"]] > 0, p  # the bigram occurs in the text
        assert fol.most_common(1)[0][0] == p["b"]  # and is the most frequent follower of a
        assert fol[p["b"]] / sum(fol.values()) > 0.6
    # a planted verb never follows anything but its own subject
    for a, fol in followers.items():
        for v in verbs & set(fol):
            assert {"a": a, "b": v, "kind": "bigram"} in bigrams


def test_planted_context_pairs(docs):
    for p in (p for p in planted_associations() if p["kind"] == "context"):
        with_a = [d for d in docs if p["a"] in d]
        assert with_a, p
        later = [d for d in with_a if p["b"] in d[d.index(p["a"]) + 1:]]
        assert len(later) == len(with_a), p  # b follows a later in every story with a
        for d in docs:  # and b never appears unless a came first
            if p["b"] in d:
                assert p["a"] in d[: d.index(p["b"])], p
