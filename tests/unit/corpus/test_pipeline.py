"""The corpus pipeline end to end: docs/theory.md §7.1 on the shared TinyStories head (against the test's own
implementation), the synthetic default, reuse, validation split, <unk>, bpe and datasets."""

from __future__ import annotations

import json
import lzma

import numpy as np
import pytest
from reference.corpus import eot_stories
from reference.words import naive_counts, naive_word_tokens

from leadingterms.corpus.pipeline import CorpusConfig, fingerprint, run_corpus, summary
from leadingterms.corpus.store import load_store
from leadingterms.corpus.synthetic import planted_associations
from leadingterms.corpus.tokenizers import load_tokenizer
from leadingterms.errors import LeadingTermsError


def spec6_reference(text: str, K: int, T: int) -> tuple[list[str], np.ndarray, dict[str, int]]:
    """docs/theory.md §7.1 written out with plain loops: stories end at '<|endoftext|>' lines (text after the
    last one is an unterminated story and is not read); per-character word tokens; the K most
    frequent tokens by decreasing count, ties by first appearance; stories with an
    out-of-vocabulary token dropped; stories with >= T+1 tokens truncated to T+1."""
    stories = eot_stories(text)

    toks = [naive_word_tokens(s) for s in stories]
    ordered, count = naive_counts(toks)
    vocab = ordered[:K]
    index = {t: i for i, t in enumerate(vocab)}
    rows, n_oov, n_short = [], 0, 0
    for ts in toks:
        if any(t not in index for t in ts):
            n_oov += 1
        elif len(ts) < T + 1:
            n_short += 1
        else:
            rows.append([index[t] for t in ts[: T + 1]])
    covered = sum(count[t] for t in vocab)
    stats = {"read": len(stories), "oov": n_oov, "short": n_short, "tokens": sum(count.values()),
             "covered": covered}
    return vocab, np.array(rows), stats


@pytest.mark.slow
@pytest.mark.parametrize("K,T", [(2000, 64), (6000, 200)])
def test_tinystories_matches_spec6(tinystories_path, tmp_path, K, T):
    text = lzma.decompress(tinystories_path.read_bytes()).decode("utf-8")
    vocab, rows, stats = spec6_reference(text, K, T)
    store = run_corpus(CorpusConfig(text=str(tinystories_path), vocab_size=K, seq_len=T, out=str(tmp_path / "s"))).store
    assert store.vocab == vocab
    np.testing.assert_array_equal(np.asarray(store.tokens), rows)
    c = store.meta["counts"]
    assert c["documents_read"] == stats["read"] == 2316
    assert c["documents_dropped_oov"] == stats["oov"] and c["documents_dropped_short"] == stats["short"]
    assert c["documents_kept"] == len(rows) == stats["read"] - stats["oov"] - stats["short"]
    assert c["tokens_read"] == stats["tokens"]
    assert store.meta["vocab_coverage"] == pytest.approx(stats["covered"] / stats["tokens"], rel=1e-12)
    assert store.meta["counts"]["documents_unterminated"] == 1
    assert store.tokens.dtype == np.uint16 and store.T == T


def test_synthetic_default_and_planted(tmp_path):
    store = run_corpus(CorpusConfig(synthetic_docs=200, out=str(tmp_path / "syn"))).store
    assert store.meta["source"]["kind"] == "synthetic"
    assert store.meta["planted"] == planted_associations()
    assert (store.N, store.T) == (200, 64)  # every story is long enough
    assert store.meta["counts"]["documents_dropped_oov"] == 0
    words = set(store.vocab)
    for p in planted_associations():
        assert p["a"] in words and p["b"] in words
    # the first 200 stories of the default corpus, same ids -> same store content
    again = run_corpus(CorpusConfig(synthetic_docs=200, out=str(tmp_path / "syn2"))).store
    assert again.content_hash == store.content_hash


def test_reuse_and_force(tmp_path, capsys):
    cfg = CorpusConfig(synthetic_docs=50, seq_len=16, out=str(tmp_path / "s"))
    first = run_corpus(cfg)
    assert not first.reused
    second = run_corpus(cfg)
    assert second.reused and second.store.content_hash == first.store.content_hash
    assert not run_corpus(CorpusConfig(synthetic_docs=50, seq_len=16, force=True, out=str(tmp_path / "s"))).reused
    # issue 10, one overwrite policy: other inputs replace the store only with --force
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()}
    with pytest.raises(LeadingTermsError, match=r"made from other inputs \(seq_len 16 there, 17 now\); pass --force"):
        run_corpus(CorpusConfig(synthetic_docs=50, seq_len=17, out=str(tmp_path / "s")))
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()} == before
    assert not run_corpus(CorpusConfig(synthetic_docs=50, seq_len=17, out=str(tmp_path / "s"), force=True)).reused
    assert load_store(tmp_path / "s").T == 17
    # a changed input file changes the fingerprint
    f = tmp_path / "c.txt"
    f.write_text("a b c d\n")
    fp1 = fingerprint(CorpusConfig(text=str(f)))
    f.write_text("a b c d e f\n")
    assert fingerprint(CorpusConfig(text=str(f))) != fp1
    assert fingerprint(CorpusConfig(text=str(f), force=True)) == fingerprint(CorpusConfig(text=str(f)))


def test_validation_split_and_cap(tmp_path):
    full = run_corpus(CorpusConfig(synthetic_docs=100, seq_len=32, out=str(tmp_path / "a"))).store
    s = run_corpus(CorpusConfig(synthetic_docs=100, seq_len=32, val_fraction=0.2, seed=3, out=str(tmp_path / "b"))).store
    assert s.N == 80 and s.val_tokens is not None and len(s.val_tokens) == 20
    all_rows = {tuple(r) for r in np.asarray(full.tokens)}
    assert {tuple(r) for r in np.asarray(s.tokens)} | {tuple(r) for r in np.asarray(s.val_tokens)} == all_rows
    assert (tmp_path / "b" / "val_tokens.npy").is_file()
    c = run_corpus(CorpusConfig(synthetic_docs=100, seq_len=32, max_sequences=10, out=str(tmp_path / "c"))).store
    np.testing.assert_array_equal(np.asarray(c.tokens), np.asarray(full.tokens)[:10])
    assert c.meta["counts"]["sequences_capped"] == 90
    p = run_corpus(CorpusConfig(synthetic_docs=20, seq_len=32, pack=True, stride=16, out=str(tmp_path / "p"))).store
    rows = np.asarray(p.tokens)
    np.testing.assert_array_equal(rows[1:, :17], rows[:-1, 16:])  # windows overlap by 17 tokens


def test_unk_option(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("the cat sat on the mat\nthe cat sat\nthe cat ate the rat today\n")
    drop = run_corpus(CorpusConfig(text=str(f), vocab_size=3, seq_len=2, out=str(tmp_path / "d"))).store
    assert drop.vocab == ["the", "cat", "sat"] and drop.meta["counts"]["documents_dropped_oov"] == 2
    np.testing.assert_array_equal(np.asarray(drop.tokens), [[0, 1, 2]])
    unk = run_corpus(CorpusConfig(text=str(f), vocab_size=3, seq_len=2, unk=True, out=str(tmp_path / "u"))).store
    assert unk.vocab == ["the", "cat", "sat", "<unk>"] and unk.N == 3
    np.testing.assert_array_equal(np.asarray(unk.tokens), [[0, 1, 2], [0, 1, 2], [0, 1, 3]])
    assert unk.meta["vocab_coverage"] == pytest.approx(10 / 15)
    assert load_tokenizer(tmp_path / "u").encode("The rat sat") == [0, 3, 2]
    with pytest.raises(LeadingTermsError, match="every one of the 3 documents"):
        run_corpus(CorpusConfig(text=str(f), vocab_size=1, seq_len=2, out=str(tmp_path / "x")))


def test_no_long_document_message(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("a b c\nd e\n")
    with pytest.raises(LeadingTermsError, match=r"no document has T\+1 = 11 tokens \(2 documents, the longest has 3\)"):
        run_corpus(CorpusConfig(text=str(f), seq_len=10, out=str(tmp_path / "o")))


def test_bpe_store_and_tokenizer_file(tmp_path):
    store = run_corpus(CorpusConfig(synthetic_docs=60, tokenizer="bpe", vocab_size=200, seq_len=16, out=str(tmp_path / "b"))).store
    assert (tmp_path / "b" / "tokenizer.json").is_file()
    assert store.vocab[:4] == ["<unk>", "<pad>", "<s>", "</s>"] and store.V <= 200
    assert (np.asarray(store.tokens)[:, 0] == 2).all()  # every sequence starts with <s>
    tok = load_tokenizer(tmp_path / "b")
    from leadingterms.corpus.synthetic import generate_documents

    assert tok.encode(generate_documents(1)[0])[:17] == list(np.asarray(store.tokens)[0])
    # rebuilding with the word tokenizer in the same folder removes the stale tokenizer.json
    run_corpus(CorpusConfig(synthetic_docs=60, seq_len=16, out=str(tmp_path / "b"), force=True))
    assert not (tmp_path / "b" / "tokenizer.json").exists()


def test_dataset_sources_in_pipeline(tmp_path):
    datasets = pytest.importorskip("datasets")
    texts = [f"story number {i} is about a cat and a dog ." for i in range(6)]
    datasets.Dataset.from_dict({"body": texts}).save_to_disk(str(tmp_path / "ds"))
    a = run_corpus(CorpusConfig(load_from_disk=str(tmp_path / "ds"), text_field="body", seq_len=8, out=str(tmp_path / "a"))).store
    jf = tmp_path / "d.jsonl"
    jf.write_text("".join(json.dumps({"body": t}) + "\n" for t in texts))
    b = run_corpus(CorpusConfig(dataset="json", data_files=[str(jf)], text_field="body", seq_len=8, out=str(tmp_path / "b"))).store
    c = run_corpus(CorpusConfig(jsonl=str(jf), text_field="body", seq_len=8, out=str(tmp_path / "c"))).store
    assert a.vocab == b.vocab == c.vocab and a.N == 6
    np.testing.assert_array_equal(np.asarray(a.tokens), np.asarray(b.tokens))
    np.testing.assert_array_equal(np.asarray(a.tokens), np.asarray(c.tokens))
    assert "documents: 6 read, 6 kept, 0 dropped" in summary(a)


def test_disk_full_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """Disk full while writing a store (issue 10): one line naming the store, no half-made folder left."""
    import errno

    from leadingterms.corpus import store as store_mod

    def full(self, name, rows):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(store_mod.StoreWriter, "write", full)
    out = tmp_path / "s"
    with pytest.raises(LeadingTermsError, match=r"cannot write .*s: the disk is full or a file-size limit"):
        run_corpus(CorpusConfig(synthetic_docs=20, seq_len=8, out=str(out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _files(folder):
    """Every file under ``folder`` but the lock file (its holder's record) -> its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".leadingterms.lock"}


def test_a_folder_of_other_files_is_not_a_store_to_replace(tmp_path):
    """--out naming a folder of the user's files (no corpus.json) is refused, byte for byte untouched; --force
    writes the store into it; a store's own files without corpus.json (an interrupted build) are rebuilt."""
    out = tmp_path / "proj"
    (out / "tokenizer").mkdir(parents=True)
    (out / "tokenizer" / "vocab.txt").write_text("mine")
    np.save(out / "tokens.npy", np.arange(10))
    (out / "README.md").write_text("keep")
    (out / ".draft.tmp").write_text("important")
    before = _files(out)
    with pytest.raises(LeadingTermsError, match=r"--out .*proj is not empty \(it holds 'README.md'\) and is not a "
                                                r"token store; pass --force"):
        run_corpus(CorpusConfig(synthetic_docs=20, seq_len=8, out=str(out)))
    assert _files(out) == before
    store = run_corpus(CorpusConfig(synthetic_docs=20, seq_len=8, out=str(out), force=True)).store
    assert store.N > 0 and (out / "README.md").read_text() == "keep"
    assert (out / "tokenizer" / "vocab.txt").read_text() == "mine"  # only the store's own names are replaced
    # a store's own files left by a killed build (corpus.json removed first) are no reason to refuse
    (out / "README.md").unlink()
    (out / "corpus.json").unlink()
    assert not run_corpus(CorpusConfig(synthetic_docs=20, seq_len=9, out=str(out))).reused


def test_the_overwrite_check_is_made_again_holding_the_lock(tmp_path, monkeypatch):
    """A store of other settings finished by another writer while this one read its source (after the first
    check, before the lock) is refused, not replaced."""
    from leadingterms.corpus import pipeline

    out = tmp_path / "s"
    real = pipeline.open_documents

    def slow_source(cfg):
        if cfg.seq_len == 16:  # the other writer, meanwhile
            run_corpus(CorpusConfig(synthetic_docs=20, seq_len=8, out=str(out)))
        return real(cfg)

    monkeypatch.setattr(pipeline, "open_documents", slow_source)
    with pytest.raises(LeadingTermsError, match=r"made from other inputs \(seq_len 8 there, 16 now\)"):
        run_corpus(CorpusConfig(synthetic_docs=20, seq_len=16, out=str(out)))
    assert load_store(out).T == 8


def test_a_failed_force_rebuild_keeps_the_old_store(tmp_path, monkeypatch):
    """The disk filling up while the new tokenizer is saved leaves the old store whole (the tokenizer is
    written in the build folder and moved in with the shards)."""
    import errno

    from leadingterms.corpus import tokenizers

    out = tmp_path / "s"
    old = run_corpus(CorpusConfig(synthetic_docs=30, seq_len=8, out=str(out))).store
    before = _files(out)

    def full(self, folder):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tokenizers.BackendTokenizer, "save", full)
    with pytest.raises(LeadingTermsError, match="the disk is full"):
        run_corpus(CorpusConfig(synthetic_docs=30, tokenizer="bpe", vocab_size=200, seq_len=8, out=str(out),
                                force=True))
    assert _files(out) == before and load_store(out).content_hash == old.content_hash


def test_relative_and_absolute_paths_are_the_same_input(tmp_path, monkeypatch):
    f = tmp_path / "c.txt"
    f.write_text("a b c d\n")
    monkeypatch.chdir(tmp_path)
    assert fingerprint(CorpusConfig(text="c.txt")) == fingerprint(CorpusConfig(text=str(f)))
    assert fingerprint(CorpusConfig(text="./c.txt", tokenizer="bpe")) == fingerprint(CorpusConfig(text=str(f),
                                                                                                  tokenizer="bpe"))


def test_empty_documents_are_skipped_in_every_source(tmp_path):
    """JSON Lines and datasets skip empty rows as text files skip empty documents (docs/theory.md §7.1): a bpe
    store gets no '<s> </s>' pairs from them, and the summary notes how many."""
    texts = ["the cat sat on the mat .", "", "  \n", "a dog ran to the park ."] * 10
    jf = tmp_path / "d.jsonl"
    jf.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    tf = tmp_path / "d.txt"
    tf.write_text("".join(t + "\n\n" for t in texts if t.strip()))
    res = run_corpus(CorpusConfig(jsonl=str(jf), tokenizer="bpe", vocab_size=60, seq_len=4, pack=True,
                                  out=str(tmp_path / "j")))
    ref = run_corpus(CorpusConfig(text=str(tf), tokenizer="bpe", vocab_size=60, seq_len=4, pack=True,
                                  out=str(tmp_path / "t"))).store
    np.testing.assert_array_equal(np.asarray(res.store.tokens), np.asarray(ref.tokens))
    assert res.store.meta["counts"]["documents_read"] == 20
    assert "note: skipped 20 empty documents" in summary(res.store)
    jf.write_text('{"text": ""}\n{"text": " "}\n')
    with pytest.raises(LeadingTermsError, match=r"holds no documents \(only 2 empty ones\)"):
        run_corpus(CorpusConfig(jsonl=str(jf), out=str(tmp_path / "e")))


def test_a_text_of_separators_only_holds_no_documents(tmp_path):
    f = tmp_path / "i.txt"
    f.write_text("<|endoftext|>\n<|endoftext|>\n")
    with pytest.raises(LeadingTermsError, match=r"text .*i.txt holds no documents$"):
        run_corpus(CorpusConfig(text=str(f), unk=True, pack=True, seq_len=1, out=str(tmp_path / "s")))
