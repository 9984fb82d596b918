"""The statistics of a token store as a resumable map-reduce over its shards (docs/theory.md §2.7).

The store's rows are cut into *shards of the computation* (:class:`RowRange`: a row range of one
of the store's files, at most ``shard_tokens`` tokens; a task reads its rows from the file, so
a worker needs the store's path, not its data). :func:`survey` reads every shard once in this
process: its content hash, and the token counts (ids checked, top-K ranking).

:class:`ResumablePasses` is the ``run_pass`` of :func:`~leadingterms.basis.stats.reduce_basis`:
it runs a pass's per-shard task on an engine (in-process or Dask), merges the raw sums in shard
order (so every engine gives the same bits) and checkpoints the running sums atomically to
``OUT/.partial/pass1.safetensors`` / ``pass2.safetensors``. A checkpoint is keyed by the store's
and every shard's content hash and the settings, and holds a checksum of its tensors: a killed
run resumes after the shards it had merged (not recomputing them); a checkpoint that does not
match or is corrupt is discarded, never summed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from leadingterms.basis._tokens import token_counts
from leadingterms.basis.buffers import merge_recycling
from leadingterms.basis.sums import AttentionSums, BigramSums, Coo, Sums, densify, pack
from leadingterms.corpus.store import row_shards
from leadingterms.distributed import Engine, InProcess
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import load_tensors, save_tensors
from leadingterms.progress import bar

#: Tokens per shard of the computation at most (a few seconds of kernel work per shard).
DEFAULT_SHARD_TOKENS = 1 << 22
#: The number of shards of a store file is a multiple of this (equal work for 2, 4 or 8 workers).
BALANCE = 8
#: Where a shard's V×V sums are large (at least :data:`LARGE_SUMS` cells), it adds at least this many pairs
#: (t, j) per cell: below, its fixed cost (zeroing, merging and, on a VM, freshly mapping a few V×V arrays)
#: outweighs its work, so a store file with few pairs for V² is cut into fewer shards (BPE, V = 9103, on the
#: 2 MiB head: 1 shard instead of 8, 2.3× less compute; benchmarks/RESULTS.md).
MIN_PAIRS_PER_CELL = 8
LARGE_SUMS = 1 << 20
PARTIAL_DIR = ".partial"
CHECKPOINT_FORMAT = 2  # 2: pass 1's Phi and A_t in one (V, V, 2) array
_KINDS: dict[str, type[Sums]] = {"bigram": BigramSums, "attention": AttentionSums}


@dataclass(frozen=True)
class RowRange:
    """Rows [start, stop) of the (N, W) array in a ``.npy`` file (data at byte ``offset``); ``load()`` reads
    them (a read, not a memory map: the process holds only these rows)."""

    path: str
    offset: int
    start: int
    stop: int
    width: int
    dtype: str

    @property
    def shape(self) -> tuple[int, int]:
        return (self.stop - self.start, self.width)

    def load(self) -> np.ndarray:
        dt = np.dtype(self.dtype)
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset + self.start * self.width * dt.itemsize)
                data = np.fromfile(f, dtype=dt, count=(self.stop - self.start) * self.width)
        except OSError as exc:
            raise LeadingTermsError(f"cannot read token shard {self.path}: {exc.strerror or exc}") from None
        if len(data) != (self.stop - self.start) * self.width:
            raise LeadingTermsError(f"token shard {self.path} is shorter than its header says")
        return data.reshape(-1, self.width)


def store_pieces(tokens: Any, V: int, shard_tokens: int = DEFAULT_SHARD_TOKENS) -> list[RowRange]:
    """The row ranges of a store's ``tokens`` (memmaps of .npy files) over ``V`` ids: each file is cut into
    equal ranges of at most ``shard_tokens`` tokens, their number rounded up to a multiple of :data:`BALANCE`
    (so that 2, 4 or 8 workers get the same work), but no more than leaves :data:`MIN_PAIRS_PER_CELL` pairs
    per cell to each where V×V is large. The layout does not depend on the engine."""
    pieces = []
    for shard in row_shards(tokens):
        if not isinstance(shard, np.memmap) or shard.filename is None:
            raise LeadingTermsError("the statistics of a store need its rows memory-mapped from .npy files")
        N, W = shard.shape
        n = -(-N * max(1, W - 1) // shard_tokens)
        n = min(N, -(-n // BALANCE) * BALANCE)
        if V * V >= LARGE_SUMS:
            n = max(1, min(n, N * (W - 1) * W // 2 // (MIN_PAIRS_PER_CELL * V * V)))
        bounds = [N * i // n for i in range(n + 1)]
        pieces += [RowRange(str(shard.filename), int(shard.offset), a, b, W, shard.dtype.str)
                   for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    return pieces


def survey_piece(piece: RowRange, V: int) -> tuple[str, torch.Tensor]:
    """(sha256 of the piece's shape and ids (16 hex digits), its token counts (V,) over all positions);
    one-line error for an id outside [0, V)."""
    rows = piece.load()
    counts = token_counts(rows, V)
    h = hashlib.sha256(f"{rows.shape}|".encode())
    h.update(np.ascontiguousarray(rows, dtype="<u4").data)
    return h.hexdigest()[:16], counts


def survey(pieces: list[RowRange], V: int, progress: bool = False, engine: Engine | None = None
           ) -> tuple[list[str], torch.Tensor]:
    """Read every piece once (on ``engine``'s workers; default here): (the content hash of each piece,
    token counts (V,) over all positions). One-line error for an id outside [0, V)."""
    hashes, counts = [], torch.zeros(V, dtype=torch.long)
    it: Any = (engine or InProcess()).map(survey_piece, pieces, V)
    if progress:
        it = bar(it, total=len(pieces), desc="basis: reading", unit="shard")
    for h, c in it:
        hashes.append(h)
        counts += c
    return hashes, counts


def checkpoint_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(t.view(torch.uint8).numpy().data)  # the tensor's own bytes (no copy)
    return h.hexdigest()


class Checkpoint:
    """The running sums of one pass in ``folder/NAME.safetensors``: key, shards merged, checksum."""

    def __init__(self, folder: Path, name: str, key: str, interval_s: float) -> None:
        self.path = folder / f"{name}.safetensors"
        self.key, self.interval_s = key, interval_s
        self._last = time.monotonic()

    def load(self, notes: list[str]) -> tuple[Sums, int] | None:
        """(sums, shards merged) of a checkpoint with this key; None (and the file removed) otherwise."""
        if not self.path.is_file():
            return None
        try:
            tensors, header = load_tensors(self.path, what="checkpoint")
            if header.get("key") != self.key or header.get("format") != CHECKPOINT_FORMAT:
                self.path.unlink()  # another corpus or other settings
                return None
            if _tensors_digest(tensors) != header.get("sha256"):
                raise LeadingTermsError("its checksum does not match its tensors")
            sums = _sums_from(tensors, header)
        except (LeadingTermsError, KeyError, TypeError, ValueError, RuntimeError) as exc:
            notes.append(f"the checkpoint {self.path} is corrupt ({exc}); its pass is computed again")
            self.path.unlink(missing_ok=True)
            return None
        return sums, int(header["done"])

    def save(self, sums: Sums, done: int) -> None:
        """Write the running sums atomically once ``interval_s`` has passed since the last write (or the start)."""
        if time.monotonic() - self._last < self.interval_s:
            return
        full = sums if sums.ids is None else sums.full()
        tensors: dict[str, torch.Tensor] = {}
        for name, e in full.entries().items():
            e = pack(e)
            if isinstance(e, Coo):
                tensors[f"{name}.idx"], tensors[f"{name}.vals"] = e.idx, e.vals
            else:
                tensors[name] = e.cpu()
        kind = "bigram" if isinstance(full, BigramSums) else "attention"
        header = {"format": CHECKPOINT_FORMAT, "key": self.key, "done": done, "kind": kind, "rows": full.rows,
                  "T": full.T, "V": full.V, "sha256": _tensors_digest(tensors)}
        save_tensors(self.path, tensors, header)
        self._last = time.monotonic()


def _sums_from(tensors: dict[str, torch.Tensor], header: dict[str, Any]) -> Sums:
    cls = _KINDS[header["kind"]]
    V = int(header["V"])
    fields: dict[str, Any] = {"rows": int(header["rows"]), "T": int(header["T"]), "V": V, "ids": None}
    for name in cls.MATRICES:
        shape = (V, V, *cls.TAIL.get(name, ()))
        if name in tensors:
            fields[name] = tensors[name]
        else:
            fields[name] = densify(Coo(V, tensors[f"{name}.idx"], tensors[f"{name}.vals"], shape[2:]))
        if tuple(fields[name].shape) != shape:
            raise LeadingTermsError(f"{name} has shape {tuple(fields[name].shape)}, not {shape}")
    for name in cls.VECTORS:
        fields[name] = tensors[name]
    return cls(**fields)


class ResumablePasses:
    """``run_pass`` for :func:`~leadingterms.basis.stats.reduce_basis`: shards on ``engine``, merged in
    order, checkpointed to ``folder`` once ``interval_s`` seconds have passed since the pass's last
    checkpoint (or its start), the end of pass 1 included: a killed run recomputes at most
    ``interval_s`` seconds of each pass's work (a pass shorter than that is not worth a checkpoint;
    nor is a pass over a single shard: rerunning it costs what resuming would).

    ``done[pass]`` / ``computed[pass]``: shards taken from a checkpoint / computed by this run."""

    def __init__(self, engine: Engine, folder: Path, key: str, *, interval_s: float = 30.0,
                 progress: bool = False, notes: list[str] | None = None) -> None:
        self.engine, self.folder, self.key = engine, folder, key
        self.interval_s, self.progress = interval_s, progress
        self.notes = notes if notes is not None else []
        self.resumed: dict[str, int] = {}
        self.computed: dict[str, int] = {}

    def __call__(self, name: str, task: Any, pieces: Any, shared: tuple[Any, ...]) -> Sums:
        which = "pass1" if name.startswith("bigram") else "pass2"
        self.folder.mkdir(parents=True, exist_ok=True)
        ck = Checkpoint(self.folder, which, checkpoint_key({"key": self.key, "pass": which}), self.interval_s)
        loaded = ck.load(self.notes)
        acc, done = loaded if loaded is not None else (None, 0)
        if done:
            self.notes.append(f"{name}: resumed after {done} of {len(pieces)} shards merged by an earlier run")
        self.resumed[which], self.computed[which] = done, 0
        results: Any = self.engine.map(task, pieces[done:], *shared)
        if self.progress:
            results = bar(results, total=len(pieces), initial=done, desc=f"basis: {name}", unit="shard")
        threads = torch.get_num_threads()
        try:
            for part in results:
                acc = merge_recycling(acc, part)
                done += 1
                self.computed[which] += 1
                if len(pieces) > 1 and done < len(pieces):
                    ck.save(acc, done)
        finally:  # workers that are threads of this process set torch's (process-wide) thread count to 1
            torch.set_num_threads(threads)
        assert acc is not None
        if which == "pass1" and len(pieces) > 1 and self.computed[which]:
            ck.save(acc, done)  # pass 2 then resumes without pass 1, which the basis needs as well
        return cast(Sums, acc)

    def clear(self) -> None:
        """Remove the checkpoints (the basis is saved)."""
        shutil.rmtree(self.folder, ignore_errors=True)
