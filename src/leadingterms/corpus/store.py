"""The token store: ``DIR/tokens.npy`` (N, T+1) + ``DIR/corpus.json``.

This is the contract between the corpus stage and everything downstream.

- ``tokens.npy``: (N, T+1) integer array, row i = sequence i = tokens x_0 .. x_T
  (inputs x_0..x_{T-1}, targets y_t = x_{t+1}); uint16 when V <= 65,535 else uint32;
  loaded memory-mapped.
- ``val_tokens.npy`` (optional): the validation sequences, same layout.
- ``corpus.json``: at least ``vocab`` (token strings in id order), ``V``, ``seq_len`` (T),
  ``n_sequences``, ``content_hash`` and whatever the producer adds (source, tokenizer
  settings, counts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from leadingterms.errors import LeadingTermsError
from leadingterms.persist import atomic_path, folder_of, read_json, write_json

TOKENS_FILE = "tokens.npy"
VAL_TOKENS_FILE = "val_tokens.npy"
META_FILE = "corpus.json"
STORE_FORMAT = 1


def token_dtype(V: int) -> type[np.unsignedinteger[Any]]:
    """uint16 when every id fits (V <= 65,535), else uint32."""
    return np.uint16 if V <= 65_535 else np.uint32


def content_hash(tokens: np.ndarray, vocab: list[str], val_tokens: np.ndarray | None = None) -> str:
    """sha256 over the vocabulary and the token ids (little-endian uint32), first 16 hex digits."""
    h = hashlib.sha256()
    h.update(json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
    for arr in (tokens, val_tokens):
        if arr is None:
            h.update(b"|none")
            continue
        h.update(f"|{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr, dtype="<u4").tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class TokenStore:
    """A loaded token store. ``tokens`` is (N, T+1); row = sequence, col = position 0..T."""

    path: Path
    tokens: np.ndarray
    vocab: list[str]
    meta: dict[str, Any] = field(repr=False)
    val_tokens: np.ndarray | None = None

    @property
    def V(self) -> int:
        return len(self.vocab)

    @property
    def T(self) -> int:
        """Number of predicted positions per sequence (sequence length T; rows hold T+1 ids)."""
        return int(self.tokens.shape[1]) - 1

    @property
    def N(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def content_hash(self) -> str:
        return str(self.meta["content_hash"])


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)


def write_store(
    out_dir: str | Path,
    tokens: np.ndarray,
    vocab: list[str],
    meta: Mapping[str, Any],
    val_tokens: np.ndarray | None = None,
) -> TokenStore:
    """Write a store atomically (arrays first, ``corpus.json`` last) and return it loaded."""
    out = Path(out_dir)
    V = len(vocab)
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise LeadingTermsError(f"tokens must be (N, T+1) with T >= 1, got shape {tokens.shape}")
    dt = token_dtype(V)
    tok = np.ascontiguousarray(tokens, dtype=dt)
    val = None if val_tokens is None else np.ascontiguousarray(val_tokens, dtype=dt)
    if val is not None and (val.ndim != 2 or val.shape[1] != tok.shape[1]):
        raise LeadingTermsError(f"validation tokens shape {val.shape} does not match {tok.shape}")
    for arr in (tok, val):
        if arr is not None and arr.size and int(arr.max()) >= V:
            raise LeadingTermsError(f"token id {int(arr.max())} out of range for V={V}")
    out.mkdir(parents=True, exist_ok=True)
    _save_npy(out / TOKENS_FILE, tok)
    if val is not None:
        _save_npy(out / VAL_TOKENS_FILE, val)
    elif (out / VAL_TOKENS_FILE).exists():
        (out / VAL_TOKENS_FILE).unlink()
    full = dict(meta)
    full.update(
        format=STORE_FORMAT,
        V=V,
        seq_len=int(tok.shape[1]) - 1,
        n_sequences=int(tok.shape[0]),
        n_val_sequences=0 if val is None else int(val.shape[0]),
        token_dtype=np.dtype(dt).name,
        content_hash=content_hash(tok, vocab, val),
        vocab=list(vocab),
    )
    write_json(out / META_FILE, full)
    return load_store(out)


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise LeadingTermsError(f"{what} is corrupt ({path}): {str(exc).splitlines()[0][:100]}") from None
    return arr


def load_store(path: str | Path) -> TokenStore:
    """Load a store written by :func:`write_store` (its folder, or a file in it), checking it is complete
    and consistent."""
    p = folder_of(path, (TOKENS_FILE, VAL_TOKENS_FILE, META_FILE))
    if not p.is_dir():
        raise LeadingTermsError(f"token store not found: {p} (make one with `leadingterms corpus --out {p}`)")
    if not (p / TOKENS_FILE).is_file():
        raise LeadingTermsError(f"not a token store: {p} has no {TOKENS_FILE}")
    meta = read_json(p / META_FILE, what="token store metadata")
    if not isinstance(meta, dict) or "vocab" not in meta or "seq_len" not in meta:
        raise LeadingTermsError(f"token store metadata {p / META_FILE} lacks 'vocab' or 'seq_len'")
    vocab = [str(v) for v in meta["vocab"]]
    tokens = _load_npy(p / TOKENS_FILE, "token file")
    T = int(meta["seq_len"])
    if tokens.ndim != 2 or tokens.shape[1] != T + 1:
        raise LeadingTermsError(
            f"token store {p} is inconsistent: tokens.npy has shape {tokens.shape}, expected (N, {T + 1})"
        )
    if tokens.shape[0] != int(meta.get("n_sequences") or tokens.shape[0]):
        raise LeadingTermsError(f"token store {p} is inconsistent: sequence count differs from corpus.json")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise LeadingTermsError(f"token store {p} is corrupt: tokens.npy has dtype {tokens.dtype}")
    val = None
    if (p / VAL_TOKENS_FILE).is_file():
        val = _load_npy(p / VAL_TOKENS_FILE, "validation token file")
        if val.ndim != 2 or val.shape[1] != T + 1:
            raise LeadingTermsError(f"token store {p} is inconsistent: val_tokens.npy has shape {val.shape}")
    return TokenStore(path=p, tokens=tokens, vocab=vocab, meta=meta, val_tokens=val)


def check_ids_in_range(store: TokenStore) -> None:
    """Full scan: every id < V (run once by consumers that index V-sized tables)."""
    for name, arr in (("tokens", store.tokens), ("val_tokens", store.val_tokens)):
        if arr is not None and arr.size and int(arr.max()) >= store.V:
            raise LeadingTermsError(
                f"token store {store.path} is corrupt: {name} holds id {int(arr.max())} >= V={store.V}"
            )
