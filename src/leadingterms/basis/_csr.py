"""The sparse-dense product of :func:`leadingterms.basis.native.sparse_times_dense`, compiled with Numba
for threads (imported only where Numba is installed: ``prange`` is Numba's)."""

from __future__ import annotations

import functools
import threading
from typing import Any

import numba
from numba import prange


def _csr_times_dense(bounds: Any, indptr: Any, indices: Any, data: Any, X: Any, out: Any) -> None:
    # out[i] += Σ_jj data[jj]·X[indices[jj]] over the nonzeros jj of CSR row i, in order (as SciPy's
    # csr_matvecs); the rows bounds[b]..bounds[b+1] of block b on one thread
    k = X.shape[1]
    for b in prange(len(bounds) - 1):
        for i in range(bounds[b], bounds[b + 1]):
            for jj in range(indptr[i], indptr[i + 1]):
                j = indices[jj]
                a = data[jj]
                for m in range(k):
                    out[i, m] += a * X[j, m]


@functools.cache
def kernel() -> Any:
    """:func:`_csr_times_dense` compiled (once, then loaded from Numba's cache)."""
    try:
        return numba.njit(parallel=True, nogil=True, cache=True)(_csr_times_dense)
    except RuntimeError:  # no writable cache location: compiled in every process
        return numba.njit(parallel=True, nogil=True)(_csr_times_dense)


def max_threads() -> int:
    """The most threads a call may use (Numba's pool: the cores, or ``NUMBA_NUM_THREADS``)."""
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]


#: one parallel launch at a time: Numba's fallback thread pool ("workqueue", where neither OpenMP nor TBB
#: loads) aborts the process on launches from two threads at once (e.g. ``warm`` in its thread and M)
_LAUNCH = threading.Lock()


def run(threads: int, *args: Any) -> None:
    """``kernel()(*args)`` on ``threads`` threads (Numba's thread count for this calling thread, restored)."""
    with _LAUNCH:
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            kernel()(*args)
        finally:
            numba.set_num_threads(before)
