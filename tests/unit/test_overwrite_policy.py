"""Issue 10: the one overwrite policy (:func:`leadingterms.cache.refuse_other`) and a new output folder that a
failed command leaves no trace of (:func:`leadingterms.locks.new_output`)."""

from __future__ import annotations

import json

import pytest

from leadingterms.cache import refuse_other
from leadingterms.errors import LeadingTermsError
from leadingterms.locks import LOCK_NAME, new_output


def test_refuse_other(tmp_path):
    meta = tmp_path / "out" / "meta.json"
    refuse_other(meta, {"a": 1}, force=False, what="the thing in")  # nothing there
    meta.parent.mkdir()
    meta.write_text(json.dumps({"a": 1, "b": 2}))
    refuse_other(meta, {"a": 1}, force=False, what="the thing in")  # the same inputs
    with pytest.raises(LeadingTermsError, match=r"the thing in .*out was made from other inputs \(a 1 there, 3 now\); "
                       "pass --force"):
        refuse_other(meta, {"a": 3}, force=False, what="the thing in")
    refuse_other(meta, {"a": 3}, force=True, what="the thing in")
    meta.write_text("{torn")
    refuse_other(meta, {"a": 3}, force=False, what="the thing in")  # broken: rebuilt, not refused


def test_new_output_leaves_no_trace_of_a_failure(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(LeadingTermsError), new_output(out):
        assert (out / LOCK_NAME).is_file()
        raise LeadingTermsError("refused")
    assert not out.exists()
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(LeadingTermsError), new_output(out):
        raise LeadingTermsError("refused")
    assert (out / "keep.txt").read_text() == "x"  # an existing folder is never removed
    with new_output(tmp_path / "made"):
        (tmp_path / "made" / "f").write_text("y")
    assert (tmp_path / "made" / "f").is_file()


def test_new_output_refuses_a_second_writer(tmp_path):
    out = tmp_path / "o"
    with new_output(out), pytest.raises(LeadingTermsError, match="is being written by process"), new_output(out):
        pass
