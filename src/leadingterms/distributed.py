"""Where independent tasks run: in this process, on a local Dask cluster, or on an existing one.

The corpus stage (tokenizing chunks of documents) and the statistics (per-shard sums) map a
pure function over a sequence of inputs and consume the results *in input order*, so every
engine gives the same output, bit for bit:

- in-process (the default, ``--workers 1``): a plain loop; Dask is not imported;
- ``--workers N`` (N > 1): a Dask ``LocalCluster`` of N workers with one thread each, started for
  the command and stopped after it. Tasks that hold the GIL (tokenizing text) get N worker
  processes; tasks whose work releases the GIL (the statistics' torch kernels) get N workers in
  this process (``processes=False``, as Dask advises for numeric work): results then reach the
  client without being serialized or copied;
- ``--scheduler ADDRESS``: the workers of a running Dask cluster (``dask scheduler`` and
  ``dask worker ADDRESS``). Its workers must have leadingterms installed and see the files the
  tasks name (the token store of ``stats``) under the same path, e.g. on a shared file system;
  ``corpus`` sends its documents to the workers.

At most ``2 × (worker threads)`` tasks are in flight, so the inputs are read as they are needed
(bounded memory) and the workers stay busy; for worker threads of this process, one per thread: a
task is sent once the result before it has been consumed, so the buffers that result gives back
serve the task instead of fresh memory (``stats``: 3 instead of 5 pass-1 sets of V×V sums freshly
mapped; 0.33 M instead of 0.46 M page faults on a 23 M-token store). Arguments shared by every task
(a tokenizer, M) are sent to each worker once.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from leadingterms.config import option
from leadingterms.errors import LeadingTermsError, first_line
from leadingterms.validate import positive_int

ENGINE_GROUP = "parallelism (one process by default; Dask for more)"
#: Seconds to wait for a scheduler to answer and for its first worker.
CONNECT_TIMEOUT_S = 20


def check_scheduler(value: Any, name: str) -> str:
    """A Dask scheduler address: ``tcp://HOST:PORT`` (or another Dask protocol), or ``HOST:PORT``."""
    if not isinstance(value, str) or ":" not in value or value.strip() != value or not value:
        raise LeadingTermsError(f"--{name.replace('_', '-')} must be a Dask scheduler address such as "
                                f"tcp://127.0.0.1:8786, got {value!r}")
    return value


@dataclass(kw_only=True)
class ParallelConfig:
    """Where a command's independent tasks run (the same flags for every command that has them)."""

    workers: int = option(1, help="workers: 1 runs in this process; N > 1 starts a local Dask cluster of N "
                          "single-threaded workers for the command", metavar="N", check=positive_int,
                          group=ENGINE_GROUP, exclusive="engine")
    scheduler: str | None = option(None, help="run on the workers of a running Dask cluster (tcp://HOST:PORT); "
                                   "for stats they must see the token store under the same path",
                                   metavar="ADDRESS",
                                   check=check_scheduler, group=ENGINE_GROUP, exclusive="engine")


class Engine(Protocol):
    """Maps a function over inputs; results come back in input order."""

    name: str  # "in-process", "local Dask cluster (N worker threads|processes)", "Dask scheduler ADDRESS"
    n_workers: int
    tasks_here: int  # tasks that may run at once in this process (its memory holds their working sets)

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *shared: Any) -> Iterator[Any]:
        """``fn(item, *shared)`` for every item, in order."""
        ...

    def run_on_workers(self, fn: Callable[[], Any]) -> None:
        """``fn()`` once in every worker process (here, for the in-process engine); ``fn`` a module-level
        function (it travels by reference)."""
        ...


class InProcess:
    """Run each task here, one after the other."""

    name = "in-process"
    n_workers = 1
    tasks_here = 1

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *shared: Any) -> Iterator[Any]:
        for item in items:
            yield fn(item, *shared)

    def run_on_workers(self, fn: Callable[[], Any]) -> None:
        fn()


class DaskEngine:
    """Run the tasks on the workers of a ``distributed.Client``."""

    def __init__(self, client: Any, name: str, *, threads_here: bool = False) -> None:
        self.client = client
        self.name = name
        self.n_workers = max(1, sum(client.nthreads().values()))
        self.tasks_here = self.n_workers if threads_here else 0
        self._warming: list[Any] = []

    def warm(self, modules: tuple[str, ...]) -> None:
        """Start importing ``modules`` on every worker now; the first :meth:`map` waits for them."""
        for address in self.client.nthreads():
            self._warming += [self.client.submit(_import, m, workers=[address], allow_other_workers=False,
                                                 pure=False) for m in modules]

    def map(self, fn: Callable[..., Any], items: Iterable[Any], *shared: Any) -> Iterator[Any]:
        window = self.n_workers if self.tasks_here else 2 * self.n_workers
        items = iter(items)
        first = list(itertools.islice(items, window))  # made while the workers may still be importing
        # no task (nor shared argument) is sent while a worker may still be importing: a worker unpickles it
        # in its event-loop thread, and two threads importing modules of one package at once can deadlock
        # (Python's import locks: a worker failed with "deadlock detected by _ModuleLock")
        while self._warming:
            _result(self._warming.pop())
        remote = [self.client.scatter(s, broadcast=True, hash=False) for s in shared]
        pending: deque[Any] = deque()
        try:
            for item in itertools.chain(first, items):
                pending.append(self.client.submit(fn, item, *remote, pure=False))
                if len(pending) >= window:
                    yield _result(pending.popleft())
            while pending:
                yield _result(pending.popleft())
        finally:
            for fut in pending:
                fut.cancel()


    def run_on_workers(self, fn: Callable[[], Any]) -> None:
        try:
            self.client.run(fn)
        except Exception as exc:  # a worker that died meanwhile
            raise LeadingTermsError(f"a call on the Dask workers failed: {type(exc).__name__}: "
                                    f"{first_line(exc)}") from None


def _import(module: str) -> None:
    importlib.import_module(module)


def _result(future: Any) -> Any:
    try:
        return future.result()
    except LeadingTermsError:
        raise
    except Exception as exc:  # a worker that died, a module missing on a remote worker, ...
        raise LeadingTermsError(f"a Dask task failed: {type(exc).__name__}: {first_line(exc)}") from None


def in_worker() -> bool:
    """True inside a Dask worker (without importing Dask where it is not loaded)."""
    if "distributed" not in sys.modules:
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def _connect(distributed: Any, address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` that has a worker; one line when it cannot be
    had: nothing listens, no worker joins, or what answers is not a Dask scheduler (Dask's handshake then
    reads garbage as a frame length, or waits for ever: it runs in a thread given a deadline here)."""
    import threading

    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            client = box["client"] = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - any failure of the handshake is reported below
            box["error"] = exc

    thread = threading.Thread(target=connect, name="dask-connect", daemon=True)
    thread.start()
    thread.join(3 * CONNECT_TIMEOUT_S)
    why = None
    if thread.is_alive():
        why = f"no Dask answer in {3 * CONNECT_TIMEOUT_S} s; is it a Dask scheduler?"
    elif "error" in box:
        exc = box["error"]
        why = (first_line(exc) or type(exc).__name__ if isinstance(exc, (OSError, TimeoutError))
               else f"it does not answer as a Dask scheduler ({type(exc).__name__})")
    if why is not None:
        if "client" in box:
            with contextlib.suppress(Exception):
                box["client"].close(timeout=1)
        raise LeadingTermsError(f"cannot use the Dask scheduler at {address}: {why}")
    return box["client"]


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:  # pragma: no cover - a dependency
        raise LeadingTermsError("--workers/--scheduler need Dask (pip install 'dask[distributed]')") from None
    return distributed


@contextlib.contextmanager
def open_engine(cfg: ParallelConfig, warm: tuple[str, ...] = (), *,
                releases_gil: bool = False) -> Iterator[Engine]:
    """The engine ``cfg`` asks for; a local cluster is stopped (and a client closed) on exit.

    ``warm``: modules the tasks will need; Dask workers start importing them at once (e.g. torch, a
    few seconds), while this process goes on. ``releases_gil``: the tasks spend their time outside
    the GIL, so a local cluster's workers are threads of this process (no serialization of
    arguments or results) rather than processes."""
    if cfg.scheduler is None and cfg.workers == 1:
        yield InProcess()
        return
    distributed = _import_distributed()
    import dask.config
    # a task's error reaches the command, which prints it as one line: the worker's own log of it ("Compute
    # Failed", a traceback) would come first; so would the logs of a cluster stopped by Ctrl-C
    logging.getLogger("distributed").setLevel(logging.CRITICAL)
    with contextlib.ExitStack() as stack:
        if cfg.scheduler is not None:
            client = stack.enter_context(_connect(distributed, cfg.scheduler))
            name = f"Dask scheduler {cfg.scheduler}"
        else:
            # thread workers have no memory limit: each would measure the whole process against its share and
            # pause (stall the command) past 80%; the command checks its memory itself before allocating
            where = ({"processes": False, "memory_limit": 0} if releases_gil
                     else {"processes": True, "host": "127.0.0.1"})
            # no worker profiler: it samples every thread's stack every 10 ms holding the GIL (worker threads of
            # this process ran `stats` 6-14% slower with it), and nothing here shows its profiles
            stack.enter_context(dask.config.set({"distributed.worker.profile.enabled": False}))
            cluster = stack.enter_context(distributed.LocalCluster(
                n_workers=cfg.workers, threads_per_worker=1, dashboard_address=":0",
                scheduler_kwargs={"dashboard": False}, silence_logs=logging.CRITICAL, **where))
            client = stack.enter_context(distributed.Client(cluster))
            name = f"local Dask cluster ({cfg.workers} worker {'threads' if releases_gil else 'processes'})"
        engine = DaskEngine(client, name, threads_here=cfg.scheduler is None and releases_gil)
        engine.warm(warm)
        yield engine
