"""Provenance: what an artefact was made from, recorded when it is written and verified when it is used.

Every artefact's metadata records the content hashes of its inputs (token store -> basis -> run ->
checkpoint -> intervention / report) and a record of each of its own data files. A record is the
file's size, modification time and a fast content hash (BLAKE2b-128); verifying it costs a
``stat`` while the size and mtime are unchanged, and a re-hash only when they changed (a
``touch`` alone passes, an edit does not). A mismatch is a one-line error naming both hashes and
the way out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from leadingterms.errors import LeadingTermsError

_CHUNK = 8 << 20


def chunks_digest(chunks: Iterable[Any]) -> str:
    """BLAKE2b-128, hex, of the bytes of ``chunks`` (buffers) one after the other: the hash of a file
    holding them (the GIL is released while a large chunk is hashed)."""
    h = hashlib.blake2b(digest_size=16)
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """:func:`chunks_digest` of a file's bytes (streamed; about a second per GB)."""
    buf = memoryview(bytearray(_CHUNK))  # one buffer read into: a new 8 MiB bytes per read is mapped afresh
    with open(path, "rb") as f:
        return chunks_digest(buf[:n] for n in iter(lambda: f.readinto(buf), 0))


def text_digest(obj: Any) -> str:
    """BLAKE2b-128 of an object's canonical JSON (e.g. a vocabulary list)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def file_record(path: str | os.PathLike[str], digest: str | None = None) -> dict[str, Any]:
    """``{"size", "mtime_ns", "blake2b"}`` of a file, for an artefact's metadata; ``digest``: its
    :func:`file_digest`, when the writer hashed the bytes it wrote (else the file is read)."""
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": digest or file_digest(path)}


def verify_file(path: str | os.PathLike[str], record: Mapping[str, Any], *, what: str, fix: str) -> None:
    """Refuse (one line) when ``path`` no longer holds the bytes ``record`` describes.

    ``what`` names the artefact ("token store corpus/"), ``fix`` the way out ("rebuild it with ...")."""
    p = Path(path)
    if not p.is_file():
        raise LeadingTermsError(f"{what}: {p.name} is missing; {fix}")
    if not isinstance(record, Mapping) or not {"size", "mtime_ns", "blake2b"} <= set(record):
        raise LeadingTermsError(f"{what}: the record of {p.name} in its metadata is malformed; {fix}")
    st = p.stat()
    if st.st_size == record["size"] and st.st_mtime_ns == record["mtime_ns"]:
        return
    now = file_digest(p) if st.st_size == record["size"] else f"(size {st.st_size} != {record['size']})"
    if now != record["blake2b"]:
        raise LeadingTermsError(f"{what}: {p.name} changed after it was written "
                                f"(blake2b {record['blake2b']} recorded, {now} now); {fix}")


def verify_files(folder: str | os.PathLike[str], records: Any, *, what: str, fix: str) -> None:
    """:func:`verify_file` for every ``{file name: record}`` of an artefact folder."""
    if not isinstance(records, Mapping):
        raise LeadingTermsError(f"{what}: its metadata lacks the records of its files; {fix}")
    for name, rec in records.items():
        verify_file(Path(folder) / str(name), rec, what=what, fix=fix)


def require_same(what: str, recorded: Any, actual: Any, *, fix: str) -> None:
    """One-line error unless an input's recorded hash equals the hash of the input at hand."""
    if recorded != actual:
        raise LeadingTermsError(f"{what}: made from {recorded}, but the input now has hash {actual}; {fix}")
