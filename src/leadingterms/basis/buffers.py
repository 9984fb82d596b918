"""Buffers of the statistics kernels: new for every call, or kept between the tasks of a map-reduce.

A pass over some rows needs zeroed accumulators (72 MB per V×V at V = 3000 in float64), for the
torch kernel a chunk of pair arrays (:class:`~leadingterms.basis.chunk.Chunk`, ≈ 144 MB at
T = 200), and in pass 2 the column-centred M' (72 MB). Allocated afresh for every shard, each is
page-faulted in and unmapped again (blocks this large bypass the allocator's free lists): 1.5 M page faults for a
23 M-token store at V = 3000, 0.5 M with the buffers kept (benchmarks/RESULTS.md), and fresh pages
can cost 30× warm ones on a VM. :data:`TASK_BUFFERS` keeps them in the process between
the tasks of :func:`~leadingterms.basis.stats.reduce_basis`: each thread's chunk, a pool of
accumulators that merged sums give back (:meth:`TaskBuffers.give_back`,
:meth:`TaskBuffers.recycle`), and M' of the pass's M;
:meth:`TaskBuffers.release` frees them. The numbers computed do not depend on where a buffer
came from (a pooled accumulator is zeroed; a chunk is overwritten before it is read).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from leadingterms.basis.chunk import Chunk
from leadingterms.basis.sums import Sums, merge


class Buffers:
    """New buffers for every call (a computation that runs once)."""

    def chunk(self, T: int, rows: int, Vc: int, dtype: torch.dtype, device: torch.device) -> Chunk:
        """Pair arrays for chunks of at most ``rows`` rows of T + 1 tokens over ``Vc`` compact ids."""
        return Chunk(T, rows, Vc, dtype, device)

    def zeros(self, n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A zeroed (n,) accumulator."""
        return torch.zeros(n, dtype=dtype, device=device)


FRESH = Buffers()


class TaskBuffers(Buffers):
    """Buffers kept in this process between tasks (thread-safe; see the module docstring)."""

    #: pooled accumulators kept at most, per size, dtype and device (two pass-1 tasks' worth)
    POOL_MAX = 6

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: dict[int, Chunk] = {}  # thread id -> the chunk of its last task
        self._pool: dict[tuple[int, torch.dtype, str], list[Tensor]] = {}  # free accumulators, by kind
        self._centred: tuple[Any, tuple[Any, ...], Tensor] | None = None  # (weakref to M, key, M')

    def chunk(self, T: int, rows: int, Vc: int, dtype: torch.dtype, device: torch.device) -> Chunk:
        """This thread's chunk from its previous task when it fits (same T, dtype and device, at least
        ``rows`` rows), else a new one; kept for the thread's next task."""
        tid = threading.get_ident()
        with self._lock:
            ch = self._chunks.pop(tid, None)
        if ch is None or (ch.pr.T, ch.dtype, ch.device) != (T, dtype, device) or ch.rows < rows:
            del ch  # freed before the new buffers are taken
            ch = Chunk(T, rows, Vc, dtype, device)
        ch.Vc = Vc
        with self._lock:
            self._chunks[tid] = ch
        return ch

    def zeros(self, n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """A pooled accumulator of this kind, zeroed, or a new one (the kind is then pooled on recycling)."""
        key = (n, dtype, str(device))
        with self._lock:
            free = self._pool.setdefault(key, [])
            t = free.pop() if free else None
        return torch.zeros(n, dtype=dtype, device=device) if t is None else t.zero_()

    def give_back(self, t: Tensor) -> None:
        """Pool ``t`` (no longer read) if tasks of this process asked for its kind and the pool has room."""
        if not t.is_contiguous():
            return
        with self._lock:
            free = self._pool.get((t.numel(), t.dtype, str(t.device)))
            if free is not None and len(free) < self.POOL_MAX:
                free.append(t.view(-1))

    def recycle(self, sums: Sums) -> None:
        """Give the matrices of ``sums`` (merged into other sums, no longer read) back (:meth:`give_back`)."""
        for name in sums.MATRICES:
            t = getattr(sums, name)
            if isinstance(t, Tensor):
                self.give_back(t)

    def centred(self, M: Tensor, key: tuple[Any, ...], make: Callable[[], Tensor]) -> Tensor:
        """``make()`` (M' of ``M``), formed once per M and ``key`` (dtype, device) and shared, read only."""
        with self._lock:
            c = self._centred
            if c is None or c[0]() is not M or c[1] != key:
                self._centred = c = None  # the old M' is freed first
                c = self._centred = (weakref.ref(M), key, make())
            return c[2]

    def kept_bytes(self) -> int:
        """Bytes of the buffers kept now."""
        with self._lock:
            ts = [t for free in self._pool.values() for t in free]
            ts += [self._centred[2]] if self._centred is not None else []
            chunks = sum(ch.nbytes for ch in self._chunks.values())
        return chunks + sum(t.numel() * t.element_size() for t in ts)

    def release(self) -> None:
        """Free every kept buffer."""
        with self._lock:
            self._chunks.clear()
            self._pool.clear()
            self._centred = None


#: The buffers of the tasks of :func:`~leadingterms.basis.stats.reduce_basis` in this process.
TASK_BUFFERS = TaskBuffers()


def release_task_buffers() -> None:
    """Free the buffers kept by the tasks of this process (:meth:`TaskBuffers.release`; a function, so that
    it can be sent to Dask workers)."""
    TASK_BUFFERS.release()


def merge_recycling(acc: Sums | None, part: Sums) -> Sums:
    """:func:`~leadingterms.basis.sums.merge`, then ``part``'s buffers go back to the tasks of this process."""
    out = merge(acc, part)
    if out is not part:
        TASK_BUFFERS.recycle(part)
    return out
