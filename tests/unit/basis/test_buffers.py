"""Buffers kept between the tasks of a map-reduce (leadingterms.basis.buffers): a thread's chunk is reused,
pooled accumulators come back zeroed, M' is formed once per M, and nothing kept changes a result."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from leadingterms.basis import stats
from leadingterms.basis.buffers import TASK_BUFFERS, TaskBuffers
from leadingterms.basis.sums import AttentionSums

CPU = torch.device("cpu")
F64 = torch.float64


def test_a_thread_gets_its_previous_chunk_back_when_it_fits():
    b = TaskBuffers()
    first = b.chunk(5, 10, 7, F64, CPU)
    assert b.chunk(5, 8, 9, F64, CPU) is first and first.Vc == 9  # fewer rows, other vocabulary: reused
    assert b.chunk(5, 11, 9, F64, CPU) is not first  # more rows
    assert b.chunk(6, 11, 9, F64, CPU).pr.T == 6  # another T
    other: list = []
    t = threading.Thread(target=lambda: other.append(b.chunk(6, 11, 9, F64, CPU)))
    t.start()
    t.join()
    assert other[0] is not b.chunk(6, 11, 9, F64, CPU)  # each thread has its own


def test_recycled_accumulators_come_back_zeroed_and_only_kinds_asked_for_are_pooled():
    b = TaskBuffers()
    stray = AttentionSums(rows=1, T=2, V=4, ids=None, Q=torch.full((4, 4), 7.0, dtype=F64), Delta=torch.zeros(2))
    b.recycle(stray)  # no task asked for (16, float64) yet: not kept
    assert b.kept_bytes() == 0
    q = b.zeros(16, F64, CPU)
    b.recycle(AttentionSums(rows=1, T=2, V=4, ids=None, Q=q.view(4, 4).fill_(5.0), Delta=torch.zeros(2)))
    again = b.zeros(16, F64, CPU)
    assert again.data_ptr() == q.data_ptr() and torch.equal(again, torch.zeros(16, dtype=F64))
    for _ in range(TaskBuffers.POOL_MAX + 3):
        b.recycle(AttentionSums(rows=1, T=2, V=4, ids=None, Q=torch.ones(4, 4, dtype=F64), Delta=torch.zeros(2)))
    assert b.kept_bytes() == TaskBuffers.POOL_MAX * 16 * 8
    b.release()
    assert b.kept_bytes() == 0 and b.zeros(16, F64, CPU).data_ptr() != q.data_ptr()


def test_the_centred_matrix_is_formed_once_per_matrix():
    b = TaskBuffers()
    calls: list[int] = []
    M1, M2 = torch.ones(3, 3), torch.ones(3, 3)

    def make(M):
        calls.append(1)
        return M * 2

    one = b.centred(M1, (F64,), lambda: make(M1))
    assert b.centred(M1, (F64,), lambda: make(M1)) is one and len(calls) == 1
    b.centred(M2, (F64,), lambda: make(M2))  # another M (equal values, another object)
    b.centred(M2, (torch.float32,), lambda: make(M2))  # another dtype
    assert len(calls) == 3


def pieces_of(seed: int, V: int, T: int, n_pieces: int, rows: int) -> list[np.ndarray]:
    g = np.random.default_rng(seed)
    return [g.integers(0, V, size=(rows, T + 1)) for _ in range(n_pieces)]


@pytest.mark.parametrize("V", [9, 40])  # 9: every piece holds every token; 40: compact blocks per piece
def test_kept_garbage_never_reaches_a_result(V, kernel, monkeypatch):
    """Poisoned buffers (NaN accumulators in the pool, a NaN chunk for this thread) before a reduction:
    the basis has the bits of a reduction whose tasks take fresh buffers, and nothing is kept after it."""
    T, pieces = 6, pieces_of(0, V, 6, 5, 7)
    fresh = TaskBuffers()
    with monkeypatch.context() as m:
        m.setattr(fresh, "chunk", lambda *a: stats.FRESH.chunk(*a))
        m.setattr(fresh, "zeros", lambda *a: stats.FRESH.zeros(*a))
        m.setattr(stats, "TASK_BUFFERS", fresh)
        want = stats.reduce_basis(pieces, V, progress=False, chunk_rows=3)

    cells = {V * V} | {k * k for k in range(1, V + 1)}
    for n in cells | {2 * n for n in cells}:  # accumulators (PhiA: 2 per cell)
        TASK_BUFFERS.zeros(n, F64, CPU)
    for n in cells:
        for _ in range(3):
            TASK_BUFFERS.recycle(AttentionSums(rows=1, T=T, V=V, ids=None, Q=torch.full((n,), float("nan"), dtype=F64),
                                               Delta=torch.zeros(T)))
            TASK_BUFFERS.give_back(torch.full((2 * n,), float("nan"), dtype=F64))
    ch = TASK_BUFFERS.chunk(T, 3, V, F64, CPU)
    ch._val.fill_(float("nan"))
    ch._kn.fill_(10**9)
    ch._kq.fill_(10**9)
    got = stats.reduce_basis(pieces, V, progress=False, chunk_rows=3)
    for name in ("B_bar", "Phi_bar", "Q_bar", "Delta", "Pi", "A_bar"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    assert TASK_BUFFERS.kept_bytes() == 0


def test_nothing_is_kept_after_a_failed_reduction(monkeypatch):
    def boom(*args):
        TASK_BUFFERS.chunk(6, 3, 9, F64, CPU)
        raise RuntimeError("stop")

    monkeypatch.setattr(stats, "attention_task", boom)
    with pytest.raises(RuntimeError):
        stats.reduce_basis(pieces_of(1, 9, 6, 3, 5), 9, progress=False, chunk_rows=3)
    assert TASK_BUFFERS.kept_bytes() == 0
