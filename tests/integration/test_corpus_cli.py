"""``leadingterms corpus`` through the CLI: the summary, reuse, and every bad input as one line + exit 2."""

from __future__ import annotations

import helpers
import numpy as np
import pytest

from leadingterms.corpus.store import load_store


def run_cli(capsys, *argv):
    """``leadingterms corpus ARGV`` -> (exit code, stdout, stderr)."""
    return helpers.run_cli(capsys, "corpus", *argv)


def one_line_error(capsys, *argv) -> str:
    """``leadingterms corpus ARGV`` refused in one line (:func:`helpers.one_line_error`)."""
    return helpers.one_line_error(capsys, "corpus", *argv)


def test_default_synthetic_summary_and_reuse(tmp_path, capsys):
    rc, out, err = run_cli(capsys, "--synthetic-docs", 120, "--seq-len", 32, "--out", tmp_path / "s")
    assert rc == 0 and err == ""
    assert "documents: 120 read, 120 kept, 0 dropped" in out
    assert "vocabulary V = " in out and "coverage 100.00%" in out and "top tokens: 'the'" in out
    assert "sequences: 120 train" in out
    store = load_store(tmp_path / "s")
    assert store.meta["planted"] and store.T == 32
    rc, out, _ = run_cli(capsys, "--synthetic-docs", 120, "--seq-len", 32, "--out", tmp_path / "s")
    assert rc == 0 and out.startswith("reusing")
    rc, out, _ = run_cli(capsys, "--synthetic-docs", 120, "--seq-len", 32, "--out", tmp_path / "s", "--force")
    assert rc == 0 and "reusing" not in out


def test_text_file_with_drops(tmp_path, capsys):
    f = tmp_path / "stories.txt"
    f.write_text("one two three four five\n<|endoftext|>\none two\n<|endoftext|>\nsix one two three four\n<|endoftext|>\n")
    rc, out, err = run_cli(capsys, "--text", f, "--vocab-size", 5, "--seq-len", 3, "--out", tmp_path / "o",
                           "--val-fraction", 0.0)
    assert rc == 0 and err == ""
    assert "documents: 3 read, 1 kept, 2 dropped (1 too short (< T+1 = 4 tokens); 1 with out-of-vocabulary tokens)" in out
    np.testing.assert_array_equal(np.asarray(load_store(tmp_path / "o").tokens), [[0, 1, 2, 3]])


def test_missing_empty_binary_files(tmp_path, capsys):
    assert "not found" in one_line_error(capsys, "--text", tmp_path / "none.txt", "--out", tmp_path / "o")
    (tmp_path / "empty.txt").write_text("")
    assert "empty" in one_line_error(capsys, "--text", tmp_path / "empty.txt", "--out", tmp_path / "o")
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)) * 4)
    assert "binary" in one_line_error(capsys, "--text", tmp_path / "bin.txt", "--out", tmp_path / "o")
    (tmp_path / "x.jsonl").write_text("not json\n")
    assert "not valid JSON" in one_line_error(capsys, "--jsonl", tmp_path / "x.jsonl", "--out", tmp_path / "o")
    assert not (tmp_path / "o" / "corpus.json").exists()


def test_no_document_long_enough(tmp_path, capsys):
    f = tmp_path / "short.txt"
    f.write_text("a b c\n\nd e f g\n\nh\n")
    msg = one_line_error(capsys, "--text", f, "--seq-len", 64, "--out", tmp_path / "o")
    assert "no document has T+1 = 65 tokens (3 documents, the longest has 4)" in msg


def test_vocab_larger_than_types_warns_and_uses_all(tmp_path, capsys):
    f = tmp_path / "c.txt"
    f.write_text("a b c a b a\n")
    rc, out, err = run_cli(capsys, "--text", f, "--vocab-size", 100, "--seq-len", 2, "--out", tmp_path / "o")
    assert rc == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "note" in lines[0] and "using all 3" in lines[0]
    assert load_store(tmp_path / "o").vocab == ["a", "b", "c"]


@pytest.mark.parametrize("argv,needle", [
    (["--seq-len", "0"], "--seq-len must be a positive integer"),
    (["--seq-len", "-3"], "--seq-len must be a positive integer"),
    (["--tokenizer", "sentencepiece"], "unknown tokenizer 'sentencepiece'"),
    (["--vocab-size", "0"], "--vocab-size must be a positive integer"),
    (["--split-by", "para"], "invalid choice: 'para'"),
    (["--val-fraction", "1.5"], "--val-fraction"),
    (["--stride", "4"], "--stride needs --pack"),
    (["--unk", "--tokenizer", "bpe"], "--unk applies to the word tokenizer only"),
])
def test_bad_settings(tmp_path, capsys, argv, needle):
    assert needle in one_line_error(capsys, *argv, "--out", tmp_path / "o")


def test_two_sources(tmp_path, capsys):
    assert "give one source" in one_line_error(capsys, "--text", "a.txt", "--jsonl", "b.jsonl", "--out", tmp_path)


def test_unreadable_dataset_paths(tmp_path, capsys):
    pytest.importorskip("datasets")
    msg = one_line_error(capsys, "--load-from-disk", tmp_path / "nope", "--out", tmp_path / "o")
    assert "dataset folder not found" in msg
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.txt").write_text("hi")
    assert "cannot read dataset folder" in one_line_error(capsys, "--load-from-disk", tmp_path / "junk",
                                                          "--out", tmp_path / "o")
    assert "cannot load dataset" in one_line_error(capsys, "--dataset", "nobody/nothing-here-xyz",
                                                   "--out", tmp_path / "o")


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert "not a folder" in one_line_error(capsys, "--synthetic-docs", 5, "--out", tmp_path / "f")


def test_keep_tokens_flag(tmp_path, capsys):
    f = tmp_path / "w.txt"
    f.write_text("a <unk> b @-@ c\n\nd <unk> e @,@ f\n")
    rc, out, err = run_cli(capsys, "--text", f, "--seq-len", 2, "--pack", "--out", tmp_path / "plain")
    assert rc == 0 and "--keep-tokens '<unk>' '@-@' '@,@'" in err
    rc, out, err = run_cli(capsys, "--text", f, "--seq-len", 2, "--pack", "--keep-tokens", "<unk>", "@-@", "@,@",
                           "--out", tmp_path / "kept")
    assert rc == 0 and err == ""
    store = load_store(tmp_path / "kept")
    assert store.vocab[0] == "<unk>" and {"@-@", "@,@"} <= set(store.vocab)
    assert store.meta["tokenizer"]["keep_tokens"] == ["<unk>", "@-@", "@,@"]
    assert "a <unk> b" not in out  # the summary lists tokens, not text
    msg = one_line_error(capsys, "--text", f, "--keep-tokens", "a b", "--out", tmp_path / "x")
    assert "--keep-tokens: a kept string must be non-empty text without spaces" in msg
    msg = one_line_error(capsys, "--text", f, "--tokenizer", "bpe", "--keep-tokens", "<unk>", "--out", tmp_path / "x")
    assert "--keep-tokens applies to the word tokenizer only" in msg
