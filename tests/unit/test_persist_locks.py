"""Atomic writes under faults, output locks between processes, provenance records, schema checks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

from leadingterms.errors import LeadingTermsError
from leadingterms.locks import lock_path, output_lock
from leadingterms.persist import FILE_MODE, save_tensors, write_json
from leadingterms.provenance import file_record, verify_file
from leadingterms.schema import POS_INT, STR_LIST, check_fields


def test_written_files_get_the_usual_permissions(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == FILE_MODE


def test_errors_name_the_target_not_the_temp_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(LeadingTermsError, match=rf"cannot write {tmp_path / 'd'}: it is a directory"):
        write_json(tmp_path / "d", {})
    (tmp_path / "f").write_text("x")
    with pytest.raises(LeadingTermsError, match=r"cannot write .*f/g.json") as e:
        write_json(tmp_path / "f" / "g.json", {})
    assert ".tmp" not in str(e.value)


@pytest.mark.slow
def test_file_size_limit_is_a_one_line_error_and_keeps_the_old_file(tmp_path):
    """A child process with a 64 KiB file-size limit (``ulimit -f``) writes 1 MB of tensors over an old file."""
    old = tmp_path / "x.safetensors"
    import torch

    save_tensors(old, {"a": torch.zeros(4)})
    before = old.read_bytes()
    code = textwrap.dedent(f"""
        import resource, torch
        from leadingterms.errors import LeadingTermsError
        from leadingterms.persist import save_tensors
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        try:
            save_tensors({str(old)!r}, {{"a": torch.zeros(250_000)}})
        except LeadingTermsError as e:
            print("ERR", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("ERR cannot write") and "disk is full or a file-size limit" in out.stdout, out
    assert old.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]  # no temp file left behind


def test_a_second_writer_is_refused_and_a_dead_writers_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from leadingterms.locks import output_lock
        with output_lock({str(out)!r}):
            print("locked", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LeadingTermsError, match=rf"is being written by process {holder.pid} "):
            with output_lock(out, what="run"):
                pass
    finally:
        holder.kill()
        holder.wait()
    (out / ".x.json.abc.tmp").write_text("half")  # a temp file of the killed writer
    with output_lock(out):
        assert not (out / ".x.json.abc.tmp").exists()
    assert lock_path(out, folder=True).is_file()


def test_a_file_outputs_lock_removes_only_its_own_temp_files(tmp_path):
    (tmp_path / ".page.html.k1.tmp").write_text("half")  # an interrupted write of page.html
    (tmp_path / ".other.json.k2.tmp").write_text("live")  # another command writing next to it
    with output_lock(tmp_path / "page.html", folder=False):
        assert not (tmp_path / ".page.html.k1.tmp").exists()
        assert (tmp_path / ".other.json.k2.tmp").read_text() == "live"


def test_provenance_record_sees_edits_not_touches(tmp_path):
    f = tmp_path / "t.bin"
    f.write_bytes(b"0123456789")
    rec = file_record(f)
    verify_file(f, rec, what="x", fix="redo")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched: same bytes
    verify_file(f, rec, what="x", fix="redo")
    f.write_bytes(b"0123456780")
    with pytest.raises(LeadingTermsError, match=rf"x: t.bin changed after it was written \(blake2b {rec['blake2b']}"):
        verify_file(f, rec, what="x", fix="redo")
    f.write_bytes(b"01")
    with pytest.raises(LeadingTermsError, match="size 2 != 10"):
        verify_file(f, rec, what="x", fix="redo")


def test_schema_names_file_and_field():
    ok = check_fields({"V": 3, "vocab": ["a"]}, {"V": POS_INT, "vocab": STR_LIST}, where="c.json", fix="rebuild")
    assert ok["V"] == 3
    for bad, msg in (({"V": "3", "vocab": []}, "field 'V' must be an integer >= 1, got '3'"),
                     ({"V": 3, "vocab": "abc"}, "field 'vocab' must be a list of strings"),
                     ({"vocab": []}, "field 'V' is missing"), (5, "it holds int, not a JSON object")):
        with pytest.raises(LeadingTermsError, match=f"c.json is corrupt: {msg}"):
            check_fields(bad, {"V": POS_INT, "vocab": STR_LIST}, where="c.json", fix="rebuild")


def test_the_claim_runs_holding_the_lock_and_its_refusal_writes_nothing(tmp_path):
    """``claim`` (a command's overwrite check) runs once the lock is held: another writer cannot take it then."""
    import fcntl

    target = tmp_path / "out"
    seen = []

    def claim():
        fd = os.open(lock_path(target, folder=True), os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        seen.append(True)

    with output_lock(target, claim=claim):
        pass
    assert seen == [True]

    def refuse():
        raise LeadingTermsError("made from other inputs")

    with pytest.raises(LeadingTermsError, match="other inputs"), output_lock(target, claim=refuse):
        raise AssertionError("the body runs only when the claim passes")
