"""The engines: in-process by default without importing Dask; results in input order; flag checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from leadingterms import distributed
from leadingterms.config import check_config
from leadingterms.distributed import InProcess, ParallelConfig, check_scheduler, in_worker, open_engine
from leadingterms.errors import LeadingTermsError


@pytest.mark.slow
def test_default_commands_never_import_dask(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from leadingterms.corpus.pipeline import CorpusConfig, run_corpus
        from leadingterms.basis.runner import StatsConfig, run_stats
        run_corpus(CorpusConfig(synthetic_docs=30, seq_len=16, out={str(tmp_path / 'c')!r}))
        run_stats(StatsConfig(corpus={str(tmp_path / 'c')!r}, out={str(tmp_path / 's')!r}, progress=False))
        print(sorted(m for m in ("dask", "distributed") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class _Future:
    def __init__(self, log, name, value=None):
        self.log, self.name, self.value = log, name, value

    def result(self):
        self.log.append(f"result {self.name}")
        return self.value

    def cancel(self):
        pass


class _Client:
    """What DaskEngine uses of a distributed.Client, recording the order of calls."""

    def __init__(self):
        self.log: list[str] = []

    def nthreads(self):
        return {"w1": 1, "w2": 1}

    def submit(self, fn, *args, **kw):
        name = f"{fn.__name__}({args[0]})"
        self.log.append(f"submit {name}")
        return _Future(self.log, name, fn(*args) if fn.__name__ != "_import" else None)

    def scatter(self, value, **kw):
        return value


def test_no_task_is_sent_before_the_workers_have_imported_their_modules():
    """A worker unpickles a task in its event-loop thread: sent while a warm-up import runs in its other
    thread, two threads import modules of one package at once and can deadlock (a worker failed with
    "deadlock detected by _ModuleLock" when `stats --scheduler` sent its first task)."""
    client = _Client()
    engine = distributed.DaskEngine(client, "test")
    engine.warm(("leadingterms.basis.stats",))
    assert list(engine.map(abs, [-1, -2])) == [1, 2]
    first_task = client.log.index("submit abs(-1)")
    warmed = [i for i, line in enumerate(client.log) if line.startswith("result _import")]
    assert len(warmed) == 2 and max(warmed) < first_task


def test_in_process_engine_maps_in_order():
    with open_engine(ParallelConfig()) as engine:
        assert isinstance(engine, InProcess) and engine.n_workers == 1
        assert list(engine.map(lambda x, k: x * k, range(5), 3)) == [0, 3, 6, 9, 12]
    assert not in_worker()


@pytest.mark.parametrize("value", ["nowhere", "", " tcp://a:1", 5])
def test_bad_scheduler_addresses(value):
    with pytest.raises(LeadingTermsError, match="--scheduler must be a Dask scheduler address"):
        check_scheduler(value, "scheduler")


def test_workers_and_scheduler_exclude_each_other():
    assert check_scheduler("tcp://127.0.0.1:8786", "scheduler") == "tcp://127.0.0.1:8786"
    with pytest.raises(LeadingTermsError, match="exclude each other"):
        check_config(ParallelConfig(workers=2, scheduler="tcp://127.0.0.1:8786"))
    with pytest.raises(LeadingTermsError, match="--workers must be a positive integer"):
        check_config(ParallelConfig(workers=0))


@pytest.mark.parametrize("releases_gil", [True, False])
def test_local_cluster_workers_run_without_profiler_and_threads_without_memory_limit(releases_gil):
    """On a local cluster the workers' statistical profiler (a GIL-holding stack sample every 10 ms) is off,
    whether the workers are threads of this process or processes; thread workers have no Dask memory limit
    (each would measure the whole process). Results still come back in order."""
    with open_engine(ParallelConfig(workers=2), releases_gil=releases_gil) as engine:
        assert list(engine.map(abs, [-3, 1, -2])) == [3, 1, 2]
        client = engine.client  # type: ignore[attr-defined]
        profiling = client.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks)
        assert len(profiling) == 2 and not any(profiling.values())
        limits = client.run(lambda dask_worker: dask_worker.memory_manager.memory_limit)
        # thread workers would each measure the whole process: no limit, the command checks memory itself
        assert all((limit is None) == releases_gil for limit in limits.values())


def test_run_on_workers_calls_each_worker_or_fails_in_one_line():
    calls: list[int] = []
    InProcess().run_on_workers(lambda: calls.append(1))
    assert calls == [1]

    class Dead(_Client):
        def run(self, fn):
            raise OSError("Timed out trying to connect to tcp://127.0.0.1:1")

    with pytest.raises(LeadingTermsError, match="call on the Dask workers failed: OSError: Timed out"):
        distributed.DaskEngine(Dead(), "test").run_on_workers(print)
