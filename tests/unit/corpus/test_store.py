import json

import numpy as np
import pytest

from leadingterms.corpus.store import load_store, write_store
from leadingterms.errors import LeadingTermsError


def test_round_trip_and_dtype(tmp_path):
    rng = np.random.default_rng(0)
    tok = rng.integers(0, 7, size=(5, 9))
    val = rng.integers(0, 7, size=(2, 9))
    vocab = [f"t{i}" for i in range(7)]
    s = write_store(tmp_path, tok, vocab, {"source": "test"}, val_tokens=val)
    assert s.tokens.dtype == np.uint16 and (s.N, s.T, s.V) == (5, 8, 7)
    again = load_store(tmp_path)
    np.testing.assert_array_equal(again.tokens, tok)
    np.testing.assert_array_equal(again.val_tokens, val)
    assert again.vocab == vocab and again.meta["source"] == "test"
    assert again.content_hash == s.content_hash


def test_uint32_for_large_vocab(tmp_path):
    vocab = [str(i) for i in range(70_000)]
    s = write_store(tmp_path, np.array([[0, 69_999]]), vocab, {})
    assert s.tokens.dtype == np.uint32


def test_hash_changes_with_content(tmp_path):
    vocab = ["a", "b"]
    h1 = write_store(tmp_path / "1", np.array([[0, 1]]), vocab, {}).content_hash
    h2 = write_store(tmp_path / "2", np.array([[1, 0]]), vocab, {}).content_hash
    assert h1 != h2


def test_bad_stores(tmp_path):
    with pytest.raises(LeadingTermsError, match="not found"):
        load_store(tmp_path / "nope")
    with pytest.raises(LeadingTermsError, match="no tokens.npy"):
        load_store(tmp_path)
    s = write_store(tmp_path / "s", np.array([[0, 1, 1]]), ["a", "b"], {})
    (s.path / "tokens.npy").write_bytes(b"garbage")
    with pytest.raises(LeadingTermsError, match="corrupt"):
        load_store(s.path)
    s = write_store(tmp_path / "m", np.array([[0, 1, 1]]), ["a", "b"], {})
    meta = json.loads((s.path / "corpus.json").read_text())
    meta["seq_len"] = 5
    (s.path / "corpus.json").write_text(json.dumps(meta))
    with pytest.raises(LeadingTermsError, match="inconsistent"):
        load_store(s.path)
    with pytest.raises(LeadingTermsError, match="out of range"):
        write_store(tmp_path / "r", np.array([[0, 2]]), ["a", "b"], {})
