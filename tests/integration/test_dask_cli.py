"""``--workers N`` (a local Dask cluster) and ``--scheduler ADDRESS`` (a running one: a real ``dask scheduler``
and two ``dask worker`` processes started here on 127.0.0.1) give the same output as one process:
the same token store bit for bit, the same statistics bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_line_error, run_cli
from reference.naive import markov_corpus

from leadingterms import distributed
from leadingterms.basis import compute_basis, load_basis
from leadingterms.corpus.pipeline import CorpusConfig, run_corpus
from leadingterms.corpus.store import load_store, write_store

NAMES = ("B_bar", "Phi_bar", "Q_bar", "Delta", "Pi", "A_bar")


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers on 127.0.0.1 -> the scheduler's address; stopped after."""
    folder = tmp_path_factory.mktemp("dask")
    dask = str(Path(sys.executable).parent / "dask")
    log = open(folder / "log.txt", "w")  # noqa: SIM115
    common = {"stdout": log, "stderr": subprocess.STDOUT, "start_new_session": True, "cwd": folder}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(folder / "scheduler.json")], **common)]
    try:
        deadline = time.monotonic() + 120
        while not (folder / "scheduler.json").is_file():
            assert time.monotonic() < deadline and procs[0].poll() is None, (folder / "log.txt").read_text()
            time.sleep(0.1)
        time.sleep(0.2)
        address = json.loads((folder / "scheduler.json").read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--nworkers", "1",
                                           "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "0"], **common))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for p in procs[::-1]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        log.close()


@pytest.fixture(scope="module")
def stats_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("store")
    tok = markov_corpus(31, 12, 150, seed=3)
    return write_store(d / "corpus", tok, [f"w{i}" for i in range(31)], {"source": "test"}, shard_bytes=2000)


@pytest.mark.slow
def test_stats_in_process_local_cluster_and_scheduler_agree(stats_store, dask_cluster, tmp_path, capsys):
    base = ["stats", "--corpus", stats_store.path, "--shard-tokens", 150]
    results = {}
    for name, extra in (("one", []), ("local", ["--workers", 2]), ("cluster", ["--scheduler", dask_cluster])):
        rc, out, err = run_cli(capsys, *base, "--out", tmp_path / name, *extra)
        assert rc == 0 and err == "", err
        results[name] = load_basis(tmp_path / name)
    meta = json.loads((tmp_path / "cluster" / "basis.json").read_text())
    assert meta["shards"] > 10 and meta["engine"] == f"Dask scheduler {dask_cluster}"
    # the kernels release the GIL: the local workers are threads of the command (nothing serialized)
    assert json.loads((tmp_path / "local" / "basis.json").read_text())["engine"] == \
        "local Dask cluster (2 worker threads)"
    from distributed import Client

    with Client(dask_cluster, timeout=60) as client:  # the worker processes were told to free their buffers
        # a lambda travels by value (a function of this test module would have to be imported there)
        kept = client.run(lambda: __import__("leadingterms.basis.buffers", fromlist=["x"]).TASK_BUFFERS.kept_bytes())
    assert len(kept) == 2 and set(kept.values()) == {0}, kept
    ref = compute_basis(np.asarray(stats_store.tokens), stats_store.V, progress=False)
    for name in NAMES:
        one = getattr(results["one"], name)
        assert torch.equal(one, getattr(results["local"], name)), name  # merged in shard order: same bits
        assert torch.equal(one, getattr(results["cluster"], name)), name
        err = float((one - getattr(ref, name)).norm() / getattr(ref, name).norm())
        assert err <= 1e-12, (name, err)


@pytest.mark.slow
def test_corpus_in_process_local_cluster_and_scheduler_agree(tinystories_path, dask_cluster, tmp_path, capsys):
    argv = ["corpus", "--text", tinystories_path, "--vocab-size", 1500, "--unk", "--seq-len", 100, "--pack",
            "--val-fraction", 0.05]
    assert run_cli(capsys, *argv, "--out", tmp_path / "one")[0] == 0
    rc, _, err = run_cli(capsys, *argv, "--out", tmp_path / "cluster", "--scheduler", dask_cluster)
    assert rc == 0, err
    local = run_corpus(CorpusConfig(text=str(tinystories_path), vocab_size=1500, unk=True, seq_len=100, pack=True,
                                    val_fraction=0.05, workers=2, chunk_chars=20_000, out=str(tmp_path / "local")))
    one = load_store(tmp_path / "one")
    for other in ("cluster", "local"):
        for f in ("tokens.npy", "val_tokens.npy"):
            assert (tmp_path / other / f).read_bytes() == (tmp_path / "one" / f).read_bytes(), (other, f)
        meta = load_store(tmp_path / other).meta
        assert meta["vocab"] == one.vocab and meta["counts"] == one.meta["counts"]
        assert meta["fingerprint"] == one.meta["fingerprint"]  # the engine is not part of the content
    assert local.store.content_hash == one.content_hash


@pytest.mark.slow
def test_engine_flags_one_line_errors(stats_store, tmp_path, capsys, monkeypatch):
    base = ["stats", "--corpus", stats_store.path, "--out", tmp_path / "b"]
    one_line_error(capsys, *base, "--workers", 0, match="--workers must be a positive integer")
    one_line_error(capsys, *base, "--workers", 2, "--scheduler", "tcp://127.0.0.1:1", match="not allowed with argument --workers")
    one_line_error(capsys, *base, "--scheduler", "nowhere", match="--scheduler must be a Dask scheduler address")
    one_line_error(capsys, *base, "--device", "tpu", match="--device must be cpu, cuda, cuda:N or auto")
    if not torch.cuda.is_available():
        one_line_error(capsys, *base, "--device", "cuda", match="CUDA is not available")
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1)
    one_line_error(capsys, *base, "--scheduler", "tcp://127.0.0.1:9", match="cannot use the Dask scheduler")
    one_line_error(capsys, "corpus", "--synthetic-docs", 5, "--workers", 2, "--scheduler", "tcp://127.0.0.1:1",
                   "--out", tmp_path / "c", match="not allowed with argument --workers")
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


@pytest.mark.slow
def test_bpe_corpus_on_the_cluster_equals_in_process(dask_cluster, tmp_path, capsys):
    argv = ["corpus", "--synthetic-docs", 300, "--tokenizer", "bpe", "--vocab-size", 300, "--seq-len", 32]
    assert run_cli(capsys, *argv, "--out", tmp_path / "one")[0] == 0
    rc, _, err = run_cli(capsys, *argv, "--out", tmp_path / "cluster", "--scheduler", dask_cluster)
    assert rc == 0, err
    assert (tmp_path / "cluster" / "tokens.npy").read_bytes() == (tmp_path / "one" / "tokens.npy").read_bytes()
    assert load_store(tmp_path / "cluster").vocab == load_store(tmp_path / "one").vocab


def test_a_task_error_on_worker_processes_is_one_line(tmp_path):
    """A tokenizer that fails on the corpus (a WordLevel model without an unk token) on two worker processes:
    the command's one line only, none of the workers' logs of the failed task."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"the": 0, "cat": 1}))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
    tok.save(str(tmp_path / "wl.json"))
    (tmp_path / "t.txt").write_text("the cat sat\n\nthe dog ran\n")
    exe = Path(sys.executable).with_name("leadingterms")
    for workers in ("1", "2"):
        proc = subprocess.run([str(exe), "corpus", "--text", str(tmp_path / "t.txt"), "--tokenizer",
                               f"hf:{tmp_path / 'wl.json'}", "--workers", workers, "--out", str(tmp_path / "s")],
                              capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == ["leadingterms corpus: error: the tokenizer cannot encode this corpus: "
                                            "WordLevel error: Missing [UNK] token from the vocabulary"], (workers, proc.stderr)
    assert not (tmp_path / "s").exists()


def test_more_workers_than_shards_start_one_per_shard_and_the_memory_check_counts_them(stats_store, tmp_path,
                                                                                       capsys, monkeypatch):
    from leadingterms.basis.shards import store_pieces

    n = len(store_pieces(stats_store.tokens, stats_store.V))
    rc, out, err = run_cli(capsys, "stats", "--corpus", stats_store.path, "--out", tmp_path / "b", "--workers", 500)
    assert rc == 0 and f"local Dask cluster ({n} worker threads)" in out, out
    assert err.strip() == f"leadingterms stats: note: the store makes {n} shards of the computation: {n} workers, " \
                          "not 500"
    # refused before any cluster starts, naming --workers: each worker thread holds its own V×V sums
    from leadingterms import distributed

    monkeypatch.setattr(distributed, "_import_distributed", lambda: pytest.fail("the cluster was started"))
    monkeypatch.setenv("LEADINGTERMS_MAX_MEMORY_SHARE", "0.0000001")
    one_line_error(capsys, "stats", "--corpus", stats_store.path, "--out", tmp_path / "c", "--workers", 2,
                   match="use fewer --workers (each holds its own V×V sums), restrict the vocabulary with --top-k K "
                         "or use --dtype float32")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("banner", [b"SSH-2.0-OpenSSH_9.6\r\n" * 10, None])
def test_a_scheduler_address_that_is_not_dask_is_one_line(stats_store, tmp_path, capsys, monkeypatch, banner):
    """What answers at --scheduler is not Dask: it sends a banner (Dask read it as a frame length: a traceback
    about allocating exabytes) or waits for a request (Dask waited for ever)."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            if banner is not None:
                conn.sendall(banner)

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 1)
    try:
        t0 = time.perf_counter()
        one_line_error(capsys, "stats", "--corpus", stats_store.path, "--out", tmp_path / "b", "--scheduler",
                       f"tcp://127.0.0.1:{server.getsockname()[1]}",
                       match="does not answer as a Dask scheduler" if banner else "no Dask answer in 3 s")
        assert time.perf_counter() - t0 < 30
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert not (tmp_path / "b").exists()
