"""Tokenizers: the docs/theory.md §7.1 word rule against a per-character loop, id order, <unk>, bpe and hf."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference.words import naive_vocab, naive_word_tokens

from leadingterms.corpus.tokenizers import (
    UNK,
    BackendTokenizer,
    WordTokenizer,
    build_word_vocab,
    check_keep_tokens,
    make_tokenizer,
    word_tokens,
)
from leadingterms.errors import LeadingTermsError

HAND = [
    ("Hello, world!", ["hello", ",", "world", "!"]),
    ("It's 42nd", ["it", "'", "s", "4", "2", "nd"]),
    ("don\u2019t", ["don", "\u2019", "t"]),
    ("a\tb\r\nc", ["a", "\t", "b", "\r", "c"]),  # \t and \r stay; only ' ' and '\n' go
    ("  \n\n ", []),
    ("Ça ÉTÉ naïve Ωmega straße", ["ça", "été", "naïve", "ωmega", "straße"]),
    ("x²½Ⅻ٣", ["x", "²", "½", "ⅻ", "٣"]),  # digits/numerics are not alpha ('Ⅻ' lowercases to 'ⅻ', not alpha)
    ("snake_case-word", ["snake", "_", "case", "-", "word"]),
    ("日本語テキスト", ["日本語テキスト"]),
    ("e\u0301", ["e", "\u0301"]),  # a combining mark is not isalpha
    ("ªº", ["ªº"]),  # ordinal indicators are letters (Lo)
    ("İstanbul", ["i", "\u0307", "stanbul"]),  # lowercasing first: 'İ' -> 'i' + combining dot
    ("<|endoftext|>", ["<", "|", "endoftext", "|", ">"]),
    ("\u00a0\u2003x", ["\u00a0", "\u2003", "x"]),  # other spaces are kept
    ("\U0001d400b\U0001f600c", ["\U0001d400b", "\U0001f600", "c"]),  # astral letter (no lowercase), symbol
    ("\U00010428\U00010400x", ["\U00010428\U00010428x"]),  # Deseret: astral letters with case
]


@pytest.mark.parametrize("text,expected", HAND)
def test_word_tokens_hand_written(text, expected):
    assert naive_word_tokens(text) == expected  # the test's own reading of docs/theory.md §7.1
    assert word_tokens(text) == expected


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_word_tokens_match_per_character_rule_on_unicode(text):
    assert word_tokens(text) == naive_word_tokens(text)


@pytest.mark.parametrize("max_cp", [0x7F, 0xFFFF, sys.maxunicode])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_word_tokens_each_code_point_domain(max_cp, data):
    """word_tokens picks an ASCII, BMP or full-unicode letter class by the text's largest code point."""
    text = data.draw(st.text(alphabet=st.characters(max_codepoint=max_cp), max_size=50))
    assert word_tokens(text) == naive_word_tokens(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ \n\t\r'’.,1²½_-ªİßǅ\u0301\u0345ⅫⅰÅ")), max_size=40))
def test_word_tokens_match_on_adversarial_alphabet(text):
    assert word_tokens(text) == naive_word_tokens(text)


def test_word_tokens_every_code_point():
    """Each code point alone and inside a letter run (all of unicode, in one string per block)."""
    chars = [chr(c) for c in range(0, sys.maxunicode + 1, 7) if not 0xD800 <= c <= 0xDFFF]
    text = "a".join(chars)
    assert word_tokens(text) == naive_word_tokens(text)


def test_vocab_order_and_ties():
    docs = [["b", "a", "c", "a"], ["c", "d", "b", "e"]]
    vocab, counts = build_word_vocab(docs, None)
    # a:2 b:2 c:2 (tie -> first appearance: b, a, c), then d, e
    assert vocab == ["b", "a", "c", "d", "e"] == naive_vocab(docs, 10)
    assert build_word_vocab(docs, 4)[0] == ["b", "a", "c", "d"]
    assert counts["a"] == 2


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.sampled_from(list("abcdefgh")), max_size=12), max_size=6), st.integers(1, 9))
def test_vocab_matches_naive(docs, K):
    assert build_word_vocab(docs, K)[0] == naive_vocab(docs, K)


def test_word_tokenizer_oov_and_unk(capsys):
    docs = ["the cat sat.", "the dog sat!", "the cat ran"]
    tok = WordTokenizer(vocab_size=3)
    ids = tok.fit_encode(docs)
    assert tok.vocab == ["the", "cat", "sat"]
    assert [list(d) for d in ids] == [[0, 1, 2, -1], [0, -1, 2, -1], [0, 1, -1]]
    tok_u = WordTokenizer(vocab_size=3, unk=True)
    ids_u = tok_u.fit_encode(docs)
    assert tok_u.vocab == ["the", "cat", "sat", UNK] and tok_u.unk_id == 3
    assert [list(d) for d in ids_u] == [[0, 1, 2, 3], [0, 3, 2, 3], [0, 1, 3]]
    assert tok_u.encode("The cat, the END") == [0, 1, 3, 0, 3]
    assert capsys.readouterr().err == ""


def test_word_tokenizer_k_too_large_notes_once(capsys):
    tok = WordTokenizer(vocab_size=50)
    tok.fit_encode(["a b a c"])
    assert capsys.readouterr().err == ""  # the library does not print; it returns notes
    assert len(tok.notes) == 1 and "50" in tok.notes[0] and "using all 3" in tok.notes[0]
    assert tok.vocab == ["a", "b", "c"]


def test_unknown_tokenizer():
    for spec in ("wordpiece", "hf:", "BPE"):
        with pytest.raises(LeadingTermsError, match="unknown tokenizer"):
            make_tokenizer(spec)


STORIES = [
    "The little bird flew to the nest. The bird was happy.",
    "A dog barked at the cat, and the cat ran up the tree.",
    "Lily found a shell at the beach. She gave the shell to her mom.",
] * 4


def test_bpe_spec_settings_and_determinism(tmp_path):
    a, b = make_tokenizer("bpe", vocab_size=120), make_tokenizer("bpe", vocab_size=120)
    ids_a, ids_b = a.fit_encode(STORIES), b.fit_encode(STORIES)
    assert isinstance(a, BackendTokenizer)
    assert a.vocab[:4] == ["<unk>", "<pad>", "<s>", "</s>"] and a.unk_id == 0
    assert a.vocab == b.vocab and all(np.array_equal(x, y) for x, y in zip(ids_a, ids_b, strict=True))
    assert len(a.vocab) <= 120
    for d in ids_a:  # post-processor template "<s> $A </s>"
        assert d[0] == 2 and d[-1] == 3 and (d >= 0).all()
    from tokenizers import pre_tokenizers

    assert isinstance(a.tok.pre_tokenizer, pre_tokenizers.Whitespace)
    a.save(tmp_path)
    again = make_tokenizer(f"hf:{tmp_path / 'tokenizer.json'}")
    assert again.vocab == a.vocab
    assert np.array_equal(again.encode_docs(STORIES[:1])[0], ids_a[0])


def test_hf_pretrained_folder(tmp_path, capsys):
    """A tiny tokenizer built here and saved with save_pretrained, loaded through AutoTokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(STORIES, trainers.BpeTrainer(vocab_size=80, special_tokens=["[UNK]"], show_progress=False))
    PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]").save_pretrained(tmp_path / "tiny")
    tok = make_tokenizer(f"hf:{tmp_path / 'tiny'}", vocab_size=5)
    assert any("ignored" in n for n in tok.notes)  # --vocab-size does not apply
    assert tok.vocab == [raw.id_to_token(i) for i in range(raw.get_vocab_size())]
    ids = tok.fit_encode(STORIES[:2])
    assert list(ids[0]) == raw.encode(STORIES[0]).ids
    with pytest.raises(LeadingTermsError, match="cannot load tokenizer"):
        make_tokenizer(f"hf:{tmp_path / 'missing-folder'}")
    with pytest.raises(LeadingTermsError, match="not found"):
        make_tokenizer(f"hf:{tmp_path / 'missing.json'}")


# ---------------------------------------------------------------------------------------- kept strings
KEEP = ("<unk>", "@-@", "@,@", "unk", "e.g.")


@pytest.mark.parametrize("text,expected", [
    ("a <unk> b", ["a", "<unk>", "b"]),
    ("x<unk>y", ["x", "<unk>", "y"]),
    ("<UNK>", ["<unk>"]),  # the text is lowercased first
    ("1 @-@ 2 @,@ 3 @.@ 4", ["1", "@-@", "2", "@,@", "3", "@", ".", "@", "4"]),
    ("unknown unk unk. <unknown>", ["unknown", "unk", "unk", ".", "<", "unknown", ">"]),
    ("see e.g. this", ["see", "e.g.", "this"]),
])
def test_keep_tokens_hand_written(text, expected):
    assert naive_word_tokens(text, KEEP) == expected
    assert word_tokens(text, KEEP) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["<unk>", "<", "unk", ">", "@-@", "@", "-", " ", "\n", "a", "É", "e.g.", ".",
                                 "unknown", "g", "\u0130"]), max_size=25).map("".join))
def test_keep_tokens_match_the_per_character_rule(text):
    assert word_tokens(text, KEEP) == naive_word_tokens(text, KEEP)
    assert word_tokens(text) == naive_word_tokens(text)


def test_check_keep_tokens():
    assert check_keep_tokens(["<UNK>", "<unk>", "@-@"]) == ("<unk>", "@-@")
    assert check_keep_tokens(None) == ()
    for bad in ("", "a b", "x\n"):
        with pytest.raises(LeadingTermsError, match="--keep-tokens"):
            check_keep_tokens([bad])


def test_unk_merges_with_a_kept_corpus_unk():
    docs = ["the <unk> sat . the <unk> ran", "the cat sat"]
    tok = WordTokenizer(vocab_size=3, unk=True, keep=["<unk>"])
    ids = tok.fit_encode(docs)
    assert tok.vocab == ["the", "<unk>", "sat"] and tok.unk_id == 1
    assert [list(d) for d in ids] == [[0, 1, 2, 1, 0, 1, 1], [0, 1, 2]]
    assert tok.settings()["unk_position"] == "the corpus's own (id 1)"
    assert any("corpus's own <unk>" in n for n in tok.notes)
    # kept but outside the K most frequent: it is out of vocabulary itself, and <unk> is appended
    tok2 = WordTokenizer(vocab_size=1, unk=True, keep=["<unk>"])
    tok2.fit_encode(docs)
    assert tok2.vocab == ["the", "<unk>"] and tok2.unk_id == 1
    assert tok2.settings()["unk_position"] == "last (id V-1)"


def test_literal_markers_are_noted():
    tok = WordTokenizer()
    tok.fit_encode(["a <unk> b @-@ c <unk>"])
    assert len(tok.notes) == 1 and "2 × '<unk>'" in tok.notes[0] and "1 × '@-@'" in tok.notes[0]
    kept = WordTokenizer(keep=["<unk>", "@-@"])
    kept.fit_encode(["a <unk> b @-@ c <unk>"])
    assert kept.notes == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(alphabet=st.sampled_from(list("aZ \n\t\r'.ΣΑ<unk>@-ßİ\u0301")), max_size=60), min_size=1,
                max_size=4), st.integers(2, 9), st.sampled_from([(), ("<unk>", "@-@")]))
def test_long_documents_tokenized_in_segments_give_the_whole_documents_tokens(monkeypatch, docs, seg, keep):
    """A document longer than SEGMENT_CHARS is tokenized a segment at a time, cut before a ' ' or '\\n': the same
    ids, lengths, types and counts as in one go (docs/theory.md §7.1 tokens of the whole document)."""
    from leadingterms.corpus import tokenizers

    whole = tokenizers.encode_word_chunk(docs, keep)
    with monkeypatch.context() as m:
        m.setattr(tokenizers, "SEGMENT_CHARS", seg)
        cut = tokenizers.encode_word_chunk(docs, keep)
    np.testing.assert_array_equal(cut.ids, whole.ids)
    np.testing.assert_array_equal(cut.lengths, whole.lengths)
    assert cut.types == whole.types and cut.markers == whole.markers
    np.testing.assert_array_equal(cut.counts, whole.counts)
    assert [t for d in docs for t in word_tokens(d, keep)] == [whole.types[i] for i in whole.ids]
