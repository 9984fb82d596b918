"""Sources: compressed text files, document splitting, JSON Lines and Hugging Face datasets."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadingterms.corpus import sources
from leadingterms.errors import LeadingTermsError

EOT_TEXT = "First story.\nSecond line.\n<|endoftext|>\nSecond story.\n<|endoftext|>\nTruncated sto"


@pytest.mark.parametrize("suffix,compress", [
    (".txt", lambda b: b), (".xz", lzma.compress), (".gz", gzip.compress), (".bz2", bz2.compress),
])
def test_read_text_compressed(tmp_path, suffix, compress):
    p = tmp_path / f"corpus{suffix}"
    p.write_bytes(compress(EOT_TEXT.encode()))
    assert sources.read_text(p) == EOT_TEXT
    docs = sources.text_file_documents(p)
    assert docs.texts == ["First story.\nSecond line.", "Second story."]
    assert docs.n_unterminated == 1 and docs.source["split_by"] == "eot"


def test_read_text_errors(tmp_path):
    with pytest.raises(LeadingTermsError, match="not found"):
        sources.read_text(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text(" \n\n")
    with pytest.raises(LeadingTermsError, match="empty"):
        sources.read_text(tmp_path / "empty.txt")
    (tmp_path / "bin.txt").write_bytes(b"abc\x00\x01\x02")
    with pytest.raises(LeadingTermsError, match="binary"):
        sources.read_text(tmp_path / "bin.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(LeadingTermsError, match="not UTF-8"):
        sources.read_text(tmp_path / "latin1.txt")
    (tmp_path / "fake.xz").write_bytes(b"plain text")
    with pytest.raises(LeadingTermsError, match="not xz-compressed"):
        sources.read_text(tmp_path / "fake.xz")
    (tmp_path / "cut.xz").write_bytes(lzma.compress(b"hello world" * 100)[:30])
    with pytest.raises(LeadingTermsError, match="corrupt xz"):
        sources.read_text(tmp_path / "cut.xz")
    with pytest.raises(LeadingTermsError, match="is a folder, not a file"):
        sources.read_text(tmp_path)
    import os

    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(LeadingTermsError, match="is not a regular file: a pipe or device cannot be read again"):
        sources.read_text(tmp_path / "pipe")
    (tmp_path / "c.txt.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)
    with pytest.raises(LeadingTermsError, match=r"c.txt.zst is zstd-compressed, which is not read here; decompress"):
        sources.read_text(tmp_path / "c.txt.zst")


def test_crlf_line_endings_are_noted(tmp_path):
    f = tmp_path / "w.txt"
    f.write_bytes(b"the cat sat\r\n\r\nthe dog ran\r\n")
    docs = sources.text_file_documents(f)
    assert docs.texts == ["the cat sat", "the dog ran"]
    assert any("Windows line endings (CRLF)" in n for n in docs.notes)
    f.write_bytes(b"the cat sat\n\nthe dog ran\n")
    assert not sources.text_file_documents(f).notes


def test_split_modes():
    text = "para one\nstill one\n\n  \npara two\n\npara three"
    assert sources.detect_split(text) == "blank"
    assert sources.split_documents(text)[0] == ["para one\nstill one", "para two", "para three"]
    assert sources.split_documents(text, "line")[0] == ["para one", "still one", "para two", "para three"]
    assert sources.split_documents("a\nb\nc")[1] == "line"
    docs, mode, unterminated = sources.split_documents("x\n<|endoftext|>\ny\n <|endoftext|>\r\n")
    assert (docs, mode, unterminated) == (["x", "y"], "eot", 0)
    # an inline <|endoftext|> is not a separator line
    assert sources.detect_split("a <|endoftext|> b\nc") == "line"
    # forcing eot on text without separators keeps the whole text as one document
    assert sources.split_documents("a\n\nb", "eot")[0] == ["a\n\nb"]
    with pytest.raises(LeadingTermsError, match="split-by"):
        sources.split_documents("a", "paragraph")


def test_max_documents(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("a\nb\nc\nd\n")
    assert sources.text_file_documents(p, "line", max_documents=2).texts == ["a", "b"]


def test_jsonl(tmp_path):
    p = tmp_path / "c.jsonl.gz"
    rows = [{"text": "one doc"}, {"text": "two\ndoc", "id": 2}, {"text": None}]
    p.write_bytes(gzip.compress(("\n".join(json.dumps(r) for r in rows) + "\n\n").encode()))
    d = sources.jsonl_documents(p)
    assert d.texts == ["one doc", "two\ndoc"] and d.source["kind"] == "jsonl"
    q = tmp_path / "story.jsonl"
    q.write_text('{"story": "x"}\n{"story": "y"}\n')
    assert sources.jsonl_documents(q, "story").texts == ["x", "y"]
    with pytest.raises(LeadingTermsError, match=r"story.jsonl:1 has no field 'text'"):
        sources.jsonl_documents(q)
    q.write_text('{"text": "x"}\n{bad json\n')
    with pytest.raises(LeadingTermsError, match=r":2 is not valid JSON"):
        sources.jsonl_documents(q)
    q.write_text('{"text": 5}\n')
    with pytest.raises(LeadingTermsError, match="not text"):
        sources.jsonl_documents(q)
    q.write_text('{"text": "x"}\n{"text": "bad \\ud800 half"}\n')  # JSON can escape what UTF-8 cannot hold
    with pytest.raises(LeadingTermsError, match=r"story.jsonl:2: field 'text' is not valid Unicode \(a lone "
                                                r"surrogate, U\+D800, at character 4\)"):
        sources.jsonl_documents(q)
    q.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(LeadingTermsError, match=r"story.jsonl:1 is not valid JSON here \(nested too deeply\)"):
        sources.jsonl_documents(q)
    q.write_text('{"text": "unterminated}\n')
    with pytest.raises(LeadingTermsError, match=r":1 is not valid JSON \(Unterminated string .* at column 10\)"):
        sources.jsonl_documents(q)


def test_load_from_disk_dataset_and_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": ["a b", "c d", "e f"], "story": ["x", "y", "z"]})
    ds.save_to_disk(str(tmp_path / "ds"))
    assert sources.disk_documents(tmp_path / "ds").texts == ["a b", "c d", "e f"]
    assert sources.disk_documents(tmp_path / "ds", text_column="story", max_documents=2).texts == ["x", "y"]
    with pytest.raises(LeadingTermsError, match="no column 'body'"):
        sources.disk_documents(tmp_path / "ds", text_column="body")
    datasets.DatasetDict({"train": ds, "validation": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    assert sources.disk_documents(tmp_path / "dd", split="validation").texts == ["a b"]
    with pytest.raises(LeadingTermsError, match="no split 'test'"):
        sources.disk_documents(tmp_path / "dd", split="test")
    with pytest.raises(LeadingTermsError, match="not found"):
        sources.disk_documents(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    with pytest.raises(LeadingTermsError, match="cannot read dataset folder"):
        sources.disk_documents(tmp_path / "junk")


@pytest.mark.parametrize("streaming", [False, True])
def test_load_dataset_json_builder(tmp_path, streaming):
    pytest.importorskip("datasets")
    f = tmp_path / "data.jsonl"
    f.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(5)))
    d = sources.hf_documents("json", data_files=[str(f)], streaming=streaming, max_documents=3)
    assert d.texts == ["doc 0", "doc 1", "doc 2"]
    assert d.source == {"kind": "hf_dataset", "name": "json", "config": None, "split": "train",
                        "text_column": "text", "streaming": streaming, "data_files": [str(f)]}


def test_a_data_file_given_as_a_dataset_name_or_folder(tmp_path):
    f = tmp_path / "d.parquet"
    f.write_bytes(b"PAR1")
    with pytest.raises(LeadingTermsError, match=r"--dataset .*d.parquet is a file: name its format and give the file, "
                                                r"e.g. --dataset parquet --data-files .*d.parquet"):
        sources.hf_stream(str(f))
    with pytest.raises(LeadingTermsError, match=r"d.parquet is a file, not a dataset folder written by save_to_disk"):
        sources.disk_stream(f)


def test_load_dataset_unreachable(tmp_path):
    pytest.importorskip("datasets")
    with pytest.raises(LeadingTermsError, match="cannot load dataset"):
        sources.hf_documents("no-such-user/no-such-dataset-xyz")
    with pytest.raises(LeadingTermsError, match="data file not found"):
        sources.hf_documents("json", data_files=[str(tmp_path / "none.jsonl")])


# ---------------------------------------------------------------------------------------- streaming
def whole_text_split(text: str, mode: str) -> tuple[list[str], int]:
    """Splitting the whole text at once (the rule of split_documents, written with the regexes)."""
    n_unterminated = 0
    if mode == "eot":
        parts = sources._EOT_LINE.split(text)
        if len(parts) > 1 and parts[-1].strip():
            n_unterminated = 1
        parts = parts[:-1] if len(parts) > 1 else parts
    elif mode == "blank":
        parts = sources._BLANK_LINE.split(text)
    else:
        parts = text.split("\n")
    return [s for s in (p.strip() for p in parts) if s], n_unterminated


def whole_text_detect(text: str) -> str:
    if sources._EOT_LINE.search(text):
        return "eot"
    return "blank" if sources._BLANK_LINE.search(text.strip()) else "line"


def naive_pieces(blocks: list[str]) -> list[str]:
    """The re-cut written plainly: after each block, cut the text held so far at its last safe point (a newline
    followed by a character other than space, tab, CR or newline)."""
    out, buf = [], ""
    for block in blocks:
        buf += block
        cut = max((j + 1 for j in range(len(buf) - 1) if buf[j] == "\n" and buf[j + 1] not in " \t\r\n"), default=0)
        if cut:
            out.append(buf[:cut])
            buf = buf[cut:]
    return out + ([buf] if buf else [])


PIECES = st.sampled_from(["a", "b", " ", "\t", "\r", "\n", "\n", "<|endoftext|>", "\u2028", "\x0c", "é"])


@settings(max_examples=500, deadline=None)
@given(st.lists(PIECES, max_size=60).map("".join), st.integers(1, 7), st.sampled_from(["eot", "blank", "line"]))
def test_streamed_split_equals_whole_text_split(text, block, mode):
    """Any cut of the text into blocks splits into the same documents as the whole text."""
    blocks = [text[i:i + block] for i in range(0, len(text), block)]
    assert list(sources.text_pieces(blocks)) == naive_pieces(blocks)
    assert sources.detect_split_pieces(sources.text_pieces(blocks)) == whole_text_detect(text)
    splitter = sources._Splitter(mode)
    docs = [d for piece in sources.text_pieces(blocks) for d in splitter.feed(piece)] + splitter.end()
    assert (docs, splitter.n_unterminated) == whole_text_split(text, mode)
    assert list(sources.text_lines(blocks)) == text.split("\n")


@pytest.mark.parametrize("compress", [lambda b: b, lzma.compress, gzip.compress, bz2.compress])
def test_text_blocks_cut_inside_characters(tmp_path, compress):
    text = "\ufeff" + "é日本\U0001f600x\n" * 50
    p = tmp_path / "t"
    p.write_bytes(compress(text.encode()))
    for size in (1, 2, 3, 7):
        assert "".join(sources.text_blocks(p, block_bytes=size)) == text[1:]  # the BOM is dropped
    bad = ("ok\n" * 40).encode() + b"caf\xe9\n"
    p.write_bytes(compress(bad))
    for size in (1, 5, 1 << 20):
        with pytest.raises(LeadingTermsError, match="invalid byte at offset 123"):
            list(sources.text_blocks(p, block_bytes=size))


def test_text_file_in_small_blocks_equals_whole_text(tinystories_path, monkeypatch):
    whole = sources.text_file_documents(tinystories_path)
    monkeypatch.setattr(sources, "BLOCK_BYTES", 4099)
    small = sources.text_file_documents(tinystories_path)
    assert small.texts == whole.texts and small.n_unterminated == whole.n_unterminated == 1
    assert len(small.texts) == 2316 and small.source["split_by"] == "eot"


def test_wikitext_blank_detection_needs_the_whole_scan(wikitext_path, monkeypatch):
    monkeypatch.setattr(sources, "BLOCK_BYTES", 10_000)
    text = lzma.decompress(wikitext_path.read_bytes()).decode("utf-8")
    docs = sources.text_file_documents(wikitext_path)
    assert docs.source["split_by"] == "blank" == whole_text_detect(text)
    assert docs.texts == whole_text_split(text, "blank")[0]
