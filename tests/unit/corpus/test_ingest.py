"""Streaming ingestion: the store equals the in-memory pipeline of docs/theory.md §7.1 (tests/reference/corpus.py)
for any chunking and sharding, on random and real corpora; the passes hold bounded memory."""

from __future__ import annotations

import contextlib
import json
import lzma
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference.corpus import eot_stories, reference_corpus

from leadingterms.corpus import ingest, pipeline
from leadingterms.corpus.pipeline import CorpusConfig, run_corpus
from leadingterms.corpus.sources import DocumentStream
from leadingterms.corpus.store import ShardedArray, load_store
from leadingterms.distributed import InProcess
from leadingterms.errors import LeadingTermsError

WORDS = ["the", "cat", "sat", "a", "dog", "ran", ".", ",", "<unk>", "@-@", "unknown", "x"]


def assert_store_matches(store, ref) -> None:
    assert store.vocab == ref.vocab
    np.testing.assert_array_equal(np.asarray(store.tokens), ref.train)
    if ref.val is None:
        assert store.val_tokens is None
    else:
        np.testing.assert_array_equal(np.asarray(store.val_tokens).reshape(-1, ref.train.shape[1]), ref.val)
    for key, value in ref.counts.items():
        assert store.meta["counts"][key] == value, key


def write_jsonl(path, docs):
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.lists(st.lists(st.sampled_from(WORDS), max_size=14).map(" ".join), min_size=1, max_size=12),
       K=st.integers(1, 10), T=st.integers(1, 6), unk=st.booleans(), keep=st.sampled_from([(), ("<unk>", "@-@")]),
       pack=st.booleans(), stride=st.one_of(st.none(), st.integers(1, 8)),
       max_sequences=st.one_of(st.none(), st.integers(1, 5)), val=st.sampled_from([0.0, 0.3]),
       seed=st.integers(0, 3), chunk_chars=st.integers(1, 40), shard_bytes=st.integers(1, 64))
def test_random_corpora_equal_the_in_memory_pipeline(tmp_path_factory, docs, K, T, unk, keep, pack, stride,
                                                     max_sequences, val, seed, chunk_chars, shard_bytes):
    tmp = tmp_path_factory.mktemp("c")
    write_jsonl(tmp / "d.jsonl", docs)
    stride = stride if pack else None
    texts = [d for d in docs if d.strip()]  # the source skips empty documents (docs/theory.md §7.1)
    try:
        ref = reference_corpus(texts, K=K, T=T, unk=unk, keep=keep, pack=pack, stride=stride,
                               max_sequences=max_sequences, val_fraction=val, seed=seed) if texts else None
    except ValueError:  # the reference's own "nothing left" (see below)
        ref = None
    cfg = CorpusConfig(jsonl=str(tmp / "d.jsonl"), vocab_size=K, seq_len=T, unk=unk, keep_tokens=list(keep),
                       pack=pack, stride=stride, max_sequences=max_sequences, val_fraction=val, seed=seed,
                       chunk_chars=chunk_chars, shard_bytes=shard_bytes, out=str(tmp / "s"))
    nothing = ref is None or len(ref.train) == 0
    if nothing:
        with pytest.raises(LeadingTermsError):
            run_corpus(cfg)
        assert not (tmp / "s").exists()  # a failed build leaves nothing behind
        return
    store = run_corpus(cfg).store
    assert_store_matches(store, ref)
    assert store.content_hash == load_store(store.path).content_hash


def test_reference_raises_when_the_split_leaves_no_training_document():
    with pytest.raises(ValueError):
        reference_corpus(["a b c"], T=1, val_fraction=0.3)


@pytest.fixture(scope="module")
def tinystories_docs(request):
    from conftest import TINYSTORIES

    if not TINYSTORIES.is_file():
        pytest.skip("shared corpus absent")
    return eot_stories(lzma.decompress(TINYSTORIES.read_bytes()).decode("utf-8"))


def test_tinystories_chunked_packed_split_sharded(tinystories_path, tinystories_docs, tmp_path):
    ref = reference_corpus(tinystories_docs, K=500, T=200, unk=True, pack=True, stride=150, val_fraction=0.1, seed=4)
    store = run_corpus(CorpusConfig(text=str(tinystories_path), vocab_size=500, unk=True, seq_len=200, pack=True,
                                    stride=150, val_fraction=0.1, seed=4, chunk_chars=40_000,
                                    shard_bytes=200_000, out=str(tmp_path / "s"))).store
    assert isinstance(store.tokens, ShardedArray) and len(store.tokens.shards) > 3
    assert_store_matches(store, ref)
    # the same store in one shard has the same content hash
    one = run_corpus(CorpusConfig(text=str(tinystories_path), vocab_size=500, unk=True, seq_len=200, pack=True,
                                  stride=150, val_fraction=0.1, seed=4, out=str(tmp_path / "one"))).store
    assert isinstance(one.tokens, np.memmap) and one.content_hash == store.content_hash


def test_wikitext_keep_tokens_and_its_own_unk(wikitext_path, tmp_path):
    text = lzma.decompress(wikitext_path.read_bytes()).decode("utf-8")
    docs = [s for s in (p.strip() for p in re.split(r"\n[ \t\r]*\n", text)) if s]
    keep = ("<unk>", "@-@", "@,@", "@.@")
    ref = reference_corpus(docs, K=2000, T=32, unk=True, keep=keep, pack=True)
    res = run_corpus(CorpusConfig(text=str(wikitext_path), vocab_size=2000, unk=True, keep_tokens=list(keep),
                                  seq_len=32, pack=True, chunk_chars=100_000, out=str(tmp_path / "w")))
    assert_store_matches(res.store, ref)
    vocab = res.store.vocab
    assert "<unk>" in vocab[:10] and "@-@" in vocab and vocab.count("<unk>") == 1
    assert len(vocab) == 2000  # out-of-vocabulary words map to WikiText's own <unk>, nothing appended
    assert res.store.meta["tokenizer"]["keep_tokens"] == list(keep)
    assert any("corpus's own <unk>" in n for n in res.notes)
    # without --keep-tokens the markers are split, and a note says how to keep them
    plain = run_corpus(CorpusConfig(text=str(wikitext_path), vocab_size=2000, seq_len=32, pack=True, unk=True,
                                    out=str(tmp_path / "p")))
    assert "<unk>" not in plain.store.vocab[:-1] and "unk" in plain.store.vocab[:10]
    note = next(n for n in plain.notes if "literal markers" in n)
    assert "'<unk>'" in note and "'@-@'" in note and "--keep-tokens" in note


class RecordingEngine(InProcess):
    """The in-process engine, recording the characters of every chunk it is given."""

    def __init__(self):
        self.chunk_chars: list[int] = []

    def map(self, fn, items, *shared):
        for item in items:
            self.chunk_chars.append(sum(map(len, item)))
            yield fn(item, *shared)


def test_each_task_holds_one_chunk_of_the_budget(tinystories_path, tmp_path, monkeypatch):
    engine = RecordingEngine()
    monkeypatch.setattr(pipeline, "open_engine", lambda cfg, **kw: contextlib.nullcontext(engine))
    budget = 30_000
    run_corpus(CorpusConfig(text=str(tinystories_path), seq_len=64, chunk_chars=budget, out=str(tmp_path / "s")))
    assert len(engine.chunk_chars) > 50 and sum(engine.chunk_chars) > 2_000_000
    assert max(engine.chunk_chars) < budget + 6000  # a chunk ends with the document that reaches the budget


def test_raw_blocks_hold_whole_documents_within_the_budget(tmp_path):
    raw = ingest.RawCorpus(tmp_path)
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 50, size=300)
    ids = rng.integers(0, 2**31, size=int(lengths.sum())).astype(np.uint32)
    raw.append(ids[: int(lengths[:100].sum())], lengths[:100])
    raw.append(ids[int(lengths[:100].sum()):], lengths[100:])
    raw.close()
    got, seen = [], 0
    for d0, block, ls in raw.blocks(None, block_tokens=120):
        assert d0 == seen and len(block) == ls.sum()
        assert len(block) <= 120 or len(ls) == 1
        seen += len(ls)
        got.append(block)
    assert seen == 300
    np.testing.assert_array_equal(np.concatenate(got), ids.astype(np.int64))


def _peak_bytes(path, out) -> int:
    tracemalloc.start()
    try:
        run_corpus(CorpusConfig(text=str(path), vocab_size=3000, unk=True, seq_len=64, pack=True,
                                chunk_chars=50_000, out=str(out)))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_does_not_grow_with_the_corpus(tinystories_docs, tmp_path, monkeypatch):
    """Four times the text, about the same peak of traced (Python and numpy) memory: every pass holds a
    block of bounded size (here made small, so that blocks are far smaller than the corpus)."""
    from leadingterms.corpus import sources, store

    monkeypatch.setattr(ingest, "BLOCK_TOKENS", 1 << 15)
    monkeypatch.setattr(sources, "BLOCK_BYTES", 1 << 16)
    monkeypatch.setattr(store, "_READ_ROWS_BYTES", 1 << 16)
    small = "\n<|endoftext|>\n".join(tinystories_docs[:400]) + "\n<|endoftext|>\n"
    (tmp_path / "1.txt").write_text(small)
    (tmp_path / "4.txt").write_text(small * 4)
    _peak_bytes(tmp_path / "1.txt", tmp_path / "warm")  # first calls build caches (the letter class)
    one, four = _peak_bytes(tmp_path / "1.txt", tmp_path / "o1"), _peak_bytes(tmp_path / "4.txt", tmp_path / "o4")
    assert len(small) > 300_000
    assert four < 1.15 * one, (one, four)


def test_stream_chunks_and_a_capped_pass_closes_the_file(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("".join(f"doc {i}\n" for i in range(100)))
    from leadingterms.corpus.sources import text_file_stream

    stream = text_file_stream(p, "line", max_documents=7)
    assert isinstance(stream, DocumentStream)
    chunks = list(stream.chunks(12))
    assert [d for c in chunks for d in c] == [f"doc {i}" for i in range(7)]
    assert all(sum(map(len, c)) < 12 + 6 for c in chunks)
    assert stream.size == p.stat().st_size


def test_streamed_hf_dataset_equals_json_lines(tmp_path):
    pytest.importorskip("datasets")
    docs = [f"story {i} : the cat and the dog ran to the park {'again ' * (i % 5)}." for i in range(40)]
    write_jsonl(tmp_path / "d.jsonl", docs)
    common = dict(vocab_size=30, seq_len=8, pack=True, val_fraction=0.2, chunk_chars=100)
    a = run_corpus(CorpusConfig(jsonl=str(tmp_path / "d.jsonl"), out=str(tmp_path / "a"), **common)).store
    b = run_corpus(CorpusConfig(dataset="json", data_files=[str(tmp_path / "d.jsonl")], streaming=True,
                                out=str(tmp_path / "b"), **common)).store
    assert a.vocab == b.vocab and a.content_hash == b.content_hash
    assert_store_matches(b, reference_corpus(docs, K=30, T=8, pack=True, val_fraction=0.2))
