import json
import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadingterms.corpus.store import ShardedArray, content_hash, load_store, write_store
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
    with pytest.raises(LeadingTermsError, match="changed after it was written"):
        load_store(s.path)
    s = write_store(tmp_path / "m", np.array([[0, 1, 1]]), ["a", "b"], {})
    meta = json.loads((s.path / "corpus.json").read_text())
    meta["seq_len"] = 5
    (s.path / "corpus.json").write_text(json.dumps(meta))
    with pytest.raises(LeadingTermsError, match="inconsistent|shape"):
        load_store(s.path)
    with pytest.raises(LeadingTermsError, match="out of range"):
        write_store(tmp_path / "r", np.array([[0, 2]]), ["a", "b"], {})


# ---------------------------------------------------------------------------------------- shards

def sharded(tmp_path, tok, val=None, shard_bytes=24):
    return write_store(tmp_path, tok, [f"t{i}" for i in range(9)], {"source": "test"}, val_tokens=val,
                       shard_bytes=shard_bytes)


def test_sharded_round_trip_and_layout(tmp_path):
    rng = np.random.default_rng(1)
    tok, val = rng.integers(0, 9, size=(23, 5)), rng.integers(0, 9, size=(4, 5))
    s = sharded(tmp_path / "s", tok, val)  # 24 bytes = 2 rows of 5 uint16 per shard
    assert isinstance(s.tokens, ShardedArray) and len(s.tokens.shards) == 12
    assert s.meta["shards"]["tokens"][0] == ["tokens-00000.npy", 2] and s.meta["shards"]["tokens"][-1][1] == 1
    assert sorted(p.name for p in s.path.glob("val_tokens*")) == ["val_tokens-00000.npy", "val_tokens-00001.npy"]
    np.testing.assert_array_equal(np.asarray(s.tokens), tok)
    np.testing.assert_array_equal(np.asarray(s.val_tokens), val)
    assert (s.N, s.T, s.V) == (23, 4, 9) and s.tokens.dtype == np.uint16
    one = write_store(tmp_path / "one", tok, [f"t{i}" for i in range(9)], {"source": "test"}, val_tokens=val)
    assert isinstance(one.tokens, np.memmap) and one.content_hash == s.content_hash
    assert content_hash(s.tokens, s.vocab, s.val_tokens) == s.content_hash
    # rewriting the folder with one shard removes the old shard files
    write_store(tmp_path / "s", tok, [f"t{i}" for i in range(9)], {})
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["corpus.json", "tokens.npy"]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 30), st.integers(1, 7), st.data())
def test_sharded_array_indexes_like_numpy(N, rows_per_shard, data):
    tok = np.arange(N * 3, dtype=np.uint16).reshape(N, 3)
    arr = ShardedArray([tok[i:i + rows_per_shard] for i in range(0, N, rows_per_shard)])
    assert arr.shape == tok.shape and len(arr) == N and arr.dtype == tok.dtype and arr.size == tok.size
    a, b = data.draw(st.integers(-N - 2, N + 2)), data.draw(st.integers(-N - 2, N + 2))
    step = data.draw(st.sampled_from([None, 1, 2, -1, 3]))
    np.testing.assert_array_equal(arr[a:b:step], tok[a:b:step])
    idx = np.array(data.draw(st.lists(st.integers(-N, N - 1), max_size=10)), dtype=np.int64)
    np.testing.assert_array_equal(arr[idx], tok[idx])
    np.testing.assert_array_equal(arr[idx, 1:], tok[idx, 1:])
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=N, max_size=N)))
    np.testing.assert_array_equal(arr[mask], tok[mask])
    i = data.draw(st.integers(-N, N - 1))
    np.testing.assert_array_equal(arr[i], tok[i])
    assert arr.max() == tok.max() and arr.min() == tok.min()
    np.testing.assert_array_equal(arr.astype(np.int64), tok.astype(np.int64))
    with pytest.raises(IndexError):
        arr[N]


def test_store_written_before_shards_still_loads(tmp_path):
    """A format-1 store: tokens.npy + corpus.json without a shards entry."""
    tok = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint16)
    np.save(tmp_path / "tokens.npy", tok)
    np.save(tmp_path / "val_tokens.npy", tok[:1])
    meta = {"format": 1, "V": 3, "seq_len": 2, "n_sequences": 2, "n_val_sequences": 1, "token_dtype": "uint16",
            "content_hash": content_hash(tok, ["a", "b", "c"], tok[:1]), "vocab": ["a", "b", "c"]}
    (tmp_path / "corpus.json").write_text(json.dumps(meta))
    s = load_store(tmp_path)
    np.testing.assert_array_equal(s.tokens, tok)
    np.testing.assert_array_equal(s.val_tokens, tok[:1])
    assert s.content_hash == meta["content_hash"]


def test_missing_or_inconsistent_shard(tmp_path):
    s = sharded(tmp_path / "s", np.zeros((6, 5), dtype=np.int64))
    (s.path / "tokens-00001.npy").unlink()
    with pytest.raises(LeadingTermsError, match="missing"):
        load_store(s.path)
    s = sharded(tmp_path / "t", np.zeros((6, 5), dtype=np.int64))
    np.save(s.path / "tokens-00001.npy", np.zeros((3, 5), dtype=np.uint16))
    with pytest.raises(LeadingTermsError, match="inconsistent"):
        load_store(s.path)


def test_consumers_read_sharded_stores(tmp_path):
    """The basis and the training loop's row access work on a sharded store as on one file."""
    import torch

    from leadingterms.basis import compute_basis
    from leadingterms.model import dataset_loss

    rng = np.random.default_rng(2)
    tok = rng.integers(0, 9, size=(40, 7))
    s = sharded(tmp_path / "s", tok, shard_bytes=70)
    assert len(s.tokens.shards) > 3
    a, b = compute_basis(s.tokens, 9, progress=False), compute_basis(tok, 9, progress=False)
    for name in ("B_bar", "Phi_bar", "Q_bar", "Delta", "A_bar"):
        assert torch.allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-15), name
    from leadingterms.model import AttentionOnlyTransformer, ModelConfig

    model = AttentionOnlyTransformer(ModelConfig(V=9, T=6, layers=1, init="normal:0.1"), seed=0)
    assert dataset_loss(model, s.tokens, batch_size=7) == pytest.approx(dataset_loss(model, tok, batch_size=7),
                                                                        rel=1e-12)
    idx = rng.integers(0, 40, size=12)
    np.testing.assert_array_equal(np.asarray(s.tokens[idx], dtype=np.int64), tok[idx])


def test_slices_across_shards_are_lazy(tmp_path):
    tok = np.arange(60, dtype=np.int64).reshape(12, 5) % 9
    s = sharded(tmp_path / "s", tok)
    part = s.tokens[3:9]
    assert isinstance(part, ShardedArray) and part.shape == (6, 5)
    assert all(isinstance(p, np.memmap) for p in part.shards)  # views of the files, nothing read
    np.testing.assert_array_equal(np.asarray(part[1:4]), tok[4:7])
    assert isinstance(s.tokens[4:6], np.memmap)


# ------------------------------------------------------------------ issue 10: provenance and schema


def _edit_meta(path, **changes):
    meta = json.loads((path / "corpus.json").read_text())
    for k, v in changes.items():
        if v is KeyError:
            meta.pop(k)
        else:
            meta[k] = v
    (path / "corpus.json").write_text(json.dumps(meta))


def test_store_records_its_files_and_notices_an_edit(tmp_path):
    """Stale store (issue 10 class 1): a token file edited after the store was written is refused in one
    line naming both hashes; a touch alone passes (size and mtime fast path, then a re-hash)."""
    s = write_store(tmp_path / "s", np.array([[0, 1, 1], [1, 0, 1]]), ["a", "b"], {})
    assert set(s.meta["files"]) == {"tokens.npy"} and s.meta["files"]["tokens.npy"]["size"] > 0
    f = s.path / "tokens.npy"
    os.utime(f)  # touch: same bytes
    load_store(s.path)
    data = bytearray(f.read_bytes())
    data[-1] ^= 1  # the last id 1 -> 0: same size, other content
    f.write_bytes(bytes(data))
    with pytest.raises(LeadingTermsError, match=r"tokens.npy changed after it was written \(blake2b \w+ recorded, "
                       r"\w+ now\); rebuild it"):
        load_store(s.path)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("seq_len", "abc", "'seq_len' must be an integer >= 1, got 'abc'"),
    ("seq_len", None, "'seq_len' is missing"),
    ("vocab", 5, "'vocab' must be a non-empty list of strings"),
    ("vocab", "ab", "'vocab' must be a non-empty list of strings"),
    ("content_hash", KeyError, "'content_hash' is missing"),
    ("n_sequences", "many", "'n_sequences' must be an integer >= 0"),
    ("V", 7, "field 'V' is 7 but field 'vocab' has 2 tokens"),
    ("vocab", ["b", "a"], "'vocab' was changed after the store was written"),
    ("vocab", ["a", "a"], "lists a token twice"),
    ("n_sequences", 5, "'n_sequences' is 5 but the token files hold 2 rows"),
    ("shards", {"tokens": [["tokens.npy", "x"]]}, "shards wrongly"),
])
def test_corpus_json_schema(tmp_path, field, value, words):
    """Tampered metadata (issue 10 class 7 and the corpus.json tracebacks): one line naming file and field."""
    s = write_store(tmp_path / "s", np.array([[0, 1, 1], [1, 0, 1]]), ["a", "b"], {})
    _edit_meta(s.path, **{field: value})
    with pytest.raises(LeadingTermsError, match=re.escape(words)) as exc:
        load_store(s.path)
    assert "\n" not in str(exc.value)
