"""Sequences: docs/theory.md §7.1 truncation, strided packing, the seeded split by document and the cap."""

from __future__ import annotations

import numpy as np
import pytest

from leadingterms.corpus.sequences import make_sequences, pack, split_by_document, truncate
from leadingterms.errors import LeadingTermsError


def docs_of(lengths):
    start = 0
    out = []
    for n in lengths:
        out.append(np.arange(start, start + n, dtype=np.int64))
        start += n
    return out


def test_truncate_rule():
    docs = docs_of([5, 3, 4, 9])
    got = truncate(docs, T=3)  # rows need T+1 = 4 tokens
    expected = np.array([[0, 1, 2, 3], [8, 9, 10, 11], [12, 13, 14, 15]])
    np.testing.assert_array_equal(got, expected)
    assert truncate(docs, T=20).shape == (0, 21)


def test_pack_windows_and_stride():
    docs = docs_of([3, 4, 3])  # stream 0..9
    np.testing.assert_array_equal(pack(docs, T=2), [[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    np.testing.assert_array_equal(pack(docs, T=2, stride=2), [[0, 1, 2], [2, 3, 4], [4, 5, 6], [6, 7, 8]])
    np.testing.assert_array_equal(pack(docs, T=3, stride=5), [[0, 1, 2, 3], [5, 6, 7, 8]])
    assert pack(docs, T=10).shape == (0, 11)
    with pytest.raises(LeadingTermsError):
        pack(docs, T=2, stride=0)


def test_split_by_document_deterministic():
    a = split_by_document(100, 0.2, seed=1)
    assert a.sum() == 20 and np.array_equal(a, split_by_document(100, 0.2, seed=1))
    assert not np.array_equal(a, split_by_document(100, 0.2, seed=2))
    assert split_by_document(10, 0.01, seed=0).sum() == 1  # at least one when f > 0
    assert split_by_document(10, 0.0, seed=0).sum() == 0
    with pytest.raises(LeadingTermsError, match="no training"):
        split_by_document(1, 0.5, seed=0)
    with pytest.raises(LeadingTermsError, match="val-fraction"):
        split_by_document(10, 1.0, seed=0)


def test_make_sequences_split_keeps_order_and_partition():
    docs = docs_of([6] * 10 + [2])
    s = make_sequences(docs, T=4, val_fraction=0.3, seed=5)
    assert s.n_train_docs == 7 and s.n_val_docs == 3 and len(s.train) == 7 and len(s.val) == 3
    firsts = sorted(list(s.train[:, 0]) + list(s.val[:, 0]))
    assert firsts == [6 * i for i in range(10)]  # every eligible document exactly once
    assert list(s.train[:, 0]) == sorted(s.train[:, 0]) and list(s.val[:, 0]) == sorted(s.val[:, 0])
    mask = split_by_document(10, 0.3, seed=5)
    assert sorted(s.val[:, 0] // 6) == list(np.flatnonzero(mask))


def test_make_sequences_cap_and_pack():
    docs = docs_of([5] * 20)
    s = make_sequences(docs, T=4, max_sequences=6)
    assert len(s.train) == 6 and s.n_train_capped == 14 and s.val is None
    np.testing.assert_array_equal(s.train[:, 0], np.arange(6) * 5)
    s = make_sequences(docs, T=4, max_sequences=6, val_fraction=0.25, seed=0)
    assert len(s.train) == 6 and len(s.val) == 2  # ceil(6 * 0.25 / 0.75)
    p = make_sequences(docs_of([3] * 10), T=4, pack_stream=True, stride=5)
    np.testing.assert_array_equal(p.train, np.arange(30).reshape(6, 5))
    with pytest.raises(LeadingTermsError, match="seq-len"):
        make_sequences(docs, T=0)
