"""The statistics as a map-reduce over shards (docs/theory.md §2.7): equal to one pass and to the naive
reference; raw sums merge exactly whether they travel dense or sparse; a killed run resumes without
recomputing merged shards and gives the same bits; a corrupt checkpoint is never summed."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from copy import deepcopy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference.naive import naive_basis

from leadingterms.basis import compute_basis, shards, stats
from leadingterms.basis.runner import StatsConfig, run_stats
from leadingterms.basis.shards import PARTIAL_DIR, Checkpoint, store_pieces, survey
from leadingterms.basis.sums import AttentionSums, BigramSums, Coo, merge, pack
from leadingterms.corpus.store import write_store
from leadingterms.distributed import ParallelConfig, open_engine
from leadingterms.errors import LeadingTermsError

NAMES = ("B_bar", "Phi_bar", "Q_bar", "Delta", "Pi", "A_bar")


def rel(a, b) -> float:
    a = a.double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)
    b = b.double().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def assert_close(basis, ref, tol=1e-12, floor=0.0):
    for name in NAMES:
        a, b = getattr(basis, name), ref[name] if isinstance(ref, dict) else getattr(ref, name)
        b = b.double().numpy() if isinstance(b, torch.Tensor) else b
        scale = max(float(np.linalg.norm(b)), floor)
        err = float(np.linalg.norm(a.double().numpy() - b)) / max(scale, 1e-300)
        assert err <= tol, (name, err)


def assert_equal(a, b):
    for name in NAMES:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@st.composite
def pieced_corpora(draw):
    V = draw(st.integers(2, 30))
    T = draw(st.integers(1, 6))
    N = draw(st.integers(1, 14))
    present = draw(st.lists(st.integers(0, V - 1), min_size=1, max_size=V, unique=True))
    rows = draw(st.lists(st.lists(st.sampled_from(present), min_size=T + 1, max_size=T + 1), min_size=N, max_size=N))
    cuts = sorted(draw(st.lists(st.integers(1, max(1, N - 1)), max_size=4, unique=True))) if N > 1 else []
    top_k = draw(st.one_of(st.none(), st.integers(1, V)))
    return V, np.array(rows, dtype=np.int64), cuts, top_k


@settings(max_examples=60, deadline=None)
@given(pieced_corpora())
def test_reduce_over_shards_equals_one_pass_and_naive(case):
    V, tokens, cuts, top_k = case
    pieces = np.split(tokens, cuts)
    one = compute_basis(tokens, V, progress=False, top_k=top_k)
    many = stats.reduce_basis(pieces, V, progress=False, top_k=top_k)
    assert many.meta["shards"] == len(pieces) and (many.N, many.T, many.V) == (one.N, one.T, one.V)
    assert many.meta["token_ids"] == one.meta["token_ids"]
    floor = 1e-3 * float(np.linalg.norm(one.M().numpy()))  # Q_bar and Delta may cancel to rounding noise
    assert_close(many, one, floor=floor)
    if top_k is None:
        ref = naive_basis(tokens, V)
        assert_close(many, ref, floor=1e-3 * float(np.linalg.norm(ref["M"])))


def random_sums(kind, V, T, density, seed, ids=None):
    g = torch.Generator().manual_seed(seed)
    n = V if ids is None else len(ids)
    mat = lambda: torch.rand(n, n, generator=g, dtype=torch.float64) * (torch.rand(n, n, generator=g) < density)  # noqa: E731
    if kind == "bigram":
        return BigramSums(rows=3, T=T, V=V, ids=ids, C=mat().round(), c=torch.randint(0, 9, (n,), generator=g),
                          PhiA=torch.stack([mat(), mat()], -1))
    return AttentionSums(rows=3, T=T, V=V, ids=ids, Q=mat() - 0.5 * (mat() > 0), Delta=torch.rand(T, generator=g,
                                                                                              dtype=torch.float64))


@pytest.mark.parametrize("kind", ["bigram", "attention"])
@pytest.mark.parametrize("density", [0.05, 0.9])
def test_sums_travel_sparse_where_smaller_and_merge_to_the_same_bits(kind, density):
    V, T = 40, 5
    parts = [random_sums(kind, V, T, density, s, ids=None if s % 2 else torch.tensor(sorted({3, 7, 8, 30, s})))
             for s in range(4)]
    sent = [pickle.loads(pickle.dumps(p)) for p in parts]
    matrix = parts[0].MATRICES[-1]
    assert isinstance(pack(getattr(parts[1], matrix)), Coo) == (density < 0.5)
    dense_size = sum(getattr(parts[1], m).numel() * 8 for m in parts[1].MATRICES)
    assert (len(pickle.dumps(parts[1])) < dense_size / 3) == (density < 0.5)
    a = b = None
    for p, q in zip(parts, sent, strict=True):
        a, b = merge(a, p.full()), merge(b, q)
    for name in a.MATRICES + a.VECTORS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.rows == b.rows == 12


def test_sums_travel_out_of_band_and_received_buffers_are_never_written():
    """Protocol 5 (Dask's) passes the arrays as out-of-band buffers; a read-only received buffer is copied
    before sums are added into it, and the merge is bit-identical to merging the originals."""
    parts = [random_sums("bigram", 40, 5, d, s) for s, d in enumerate((0.9, 0.05, 0.9))]
    a = b = None
    received, snapshots = [], []
    for p in parts:
        buffers: list[pickle.PickleBuffer] = []
        head = pickle.dumps(p, protocol=5, buffer_callback=buffers.append)
        assert len(head) < 1000 and len(buffers) >= 4  # the arrays are not in the pickle stream
        got = [bytes(buf.raw()) for buf in buffers]
        received += got
        snapshots += [bytes(bytearray(r)) for r in got]
        q = pickle.loads(head, buffers=[memoryview(r) for r in got])  # read-only, as from a socket
        a, b = merge(a, deepcopy(p).full()), merge(b, q)
    assert received == snapshots
    for name in a.MATRICES + a.VECTORS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# ---------------------------------------------------------------------------------------- stores and checkpoints
V_, T_ = 23, 9
SHARD_TOKENS = 15 * T_  # 4 per store file, rounded up to 8: 16 shards of 7 or 8 rows


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.full(V_, 0.3), size=V_)
    rows = np.zeros((120, T_ + 1), dtype=np.int64)
    rows[:, 0] = rng.integers(0, V_, size=120)
    for t in range(T_):
        rows[:, t + 1] = [rng.choice(V_, p=probs[x]) for x in rows[:, t]]
    return write_store(tmp_path / "corpus", rows, [f"w{i}" for i in range(V_)], {"source": "test"},
                       shard_bytes=60 * (T_ + 1) * 2)  # 2 store files of 60 rows


def cfg_for(store, out, **kw):
    return StatsConfig(corpus=str(store.path), out=str(out), shard_tokens=SHARD_TOKENS, checkpoint_seconds=0,
                       progress=False, **kw)


def test_store_shards_equal_one_pass(store, tmp_path):
    pieces = store_pieces(store.tokens, V_, SHARD_TOKENS)
    assert len(pieces) == 16 and {p.shape[0] for p in pieces} == {7, 8}
    np.testing.assert_array_equal(np.concatenate([p.load() for p in pieces]), np.asarray(store.tokens))
    res = run_stats(cfg_for(store, tmp_path / "b"))
    assert res.basis.meta["shards"] == 16 and res.basis.meta["shards_computed"] == {"pass1": 16, "pass2": 16}
    assert_close(res.basis, compute_basis(np.asarray(store.tokens), V_, progress=False))
    assert not (tmp_path / "b" / PARTIAL_DIR).exists()  # checkpoints go once the basis is saved


@pytest.mark.parametrize("N,V,expected", [
    (116369, 3001, 8),  # the 101 MB benchmark store: 6 shards of 4M tokens, rounded up to 8
    (2424, 3001, 1),  # the 2 MiB head, word: 0.7 pairs per cell in all
    (2419, 9103, 1),  # the 2 MiB head, BPE
    (40000, 3001, 8),  # 8.0 M tokens, 89 pairs per cell in all: 2 shards, rounded up to 8
    (12000, 3001, 3),  # 2.4 M tokens: 3 shards of >= 8 pairs per cell, not 8
    (2424, 1023, 8),  # small V×V sums: cut by tokens alone
])
def test_shards_are_fewer_where_the_vocabulary_is_large_for_the_store(tmp_path, N, V, expected):
    path = tmp_path / "tokens.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(N, 201)).flush()
    tokens = np.load(path, mmap_mode="r")
    pieces = store_pieces(tokens, V, 1 << 22 if N > 5000 else 100_000)
    assert len(pieces) == expected
    assert [(p.start, p.stop) for p in pieces] == [(N * i // expected, N * (i + 1) // expected)
                                                   for i in range(expected)]
    pairs_per_cell = min(p.shape[0] for p in pieces) * 200 * 201 // 2 / V**2
    assert expected == 1 or V * V < shards.LARGE_SUMS or pairs_per_cell >= shards.MIN_PAIRS_PER_CELL


def test_survey_checks_ids_before_anything_is_written(store, tmp_path):
    shard = np.load(store.path / "tokens-00001.npy", mmap_mode="r+")  # a store file corrupted on disk
    shard[5, 3] = V_ + 4
    shard.flush()
    with pytest.raises(LeadingTermsError, match="out of range|changed after it was written"):
        run_stats(cfg_for(store, tmp_path / "b"))
    assert not (tmp_path / "b").exists()
    shard[5, 3] = 0
    shard.flush()
    hashes, counts = survey(store_pieces(store.tokens, V_, SHARD_TOKENS), V_)
    assert len(set(hashes)) == 16 and int(counts.sum()) == store.N * (T_ + 1)


def test_survey_on_dask_workers_equals_survey_here(store):
    """The survey runs on the engine's workers: same hashes (in piece order) and counts; a bad id is the same
    one-line error."""
    pieces = store_pieces(store.tokens, V_, SHARD_TOKENS)
    here = survey(pieces, V_)
    with open_engine(ParallelConfig(workers=2), releases_gil=True) as engine:
        sent: list[str] = []
        dask_map = engine.map
        engine.map = lambda fn, items, *shared: (sent.append(fn.__name__), dask_map(fn, items, *shared))[1]
        there = survey(pieces, V_, engine=engine)
        assert sent == ["survey_piece"]  # the pieces were read on the workers
        assert there[0] == here[0] and torch.equal(there[1], here[1])
        with pytest.raises(LeadingTermsError, match=f"out of range for V={V_ - 1}"):
            survey(pieces, V_ - 1, engine=engine)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from leadingterms.basis import stats
    from leadingterms.basis.runner import StatsConfig, run_stats
    corpus, out, which, after, shard_tokens = sys.argv[1:6]
    name = {"pass1": "bigram_task", "pass2": "attention_task"}[which]
    task, calls = getattr(stats, name), [0]
    def killing(*args):
        if calls[0] == int(after):
            os.kill(os.getpid(), signal.SIGKILL)
        calls[0] += 1
        return task(*args)
    setattr(stats, name, killing)
    run_stats(StatsConfig(corpus=corpus, out=out, shard_tokens=int(shard_tokens), checkpoint_seconds=0,
                          progress=False))
""")


def kill_during(store, out, which, after):
    """Run ``stats`` in a process that SIGKILLs itself when it starts shard ``after`` of ``which``."""
    env = {**os.environ, "LEADINGTERMS_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-c", KILLER, str(store.path), str(out), which, str(after), str(SHARD_TOKENS)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def counting(monkeypatch, name):
    calls = []
    task = getattr(stats, name)
    monkeypatch.setattr(stats, name, lambda *args: calls.append(1) or task(*args))
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("which,after", [("pass1", 5), ("pass2", 7)])
def test_sigkill_then_resume(store, tmp_path, monkeypatch, which, after):
    whole = run_stats(cfg_for(store, tmp_path / "whole")).basis
    out = tmp_path / "b"
    kill_during(store, out, which, after)
    partial = out / PARTIAL_DIR
    assert not (out / "basis.json").exists()
    ck1 = partial / "pass1.safetensors"
    assert ck1.is_file() and (which == "pass1") != (partial / "pass2.safetensors").is_file()
    stamp = ck1.stat().st_mtime_ns
    pass1, pass2 = counting(monkeypatch, "bigram_task"), counting(monkeypatch, "attention_task")
    res = run_stats(cfg_for(store, out))
    done1, done2 = (after, 0) if which == "pass1" else (16, after)
    assert res.basis.meta["shards_resumed"] == {"pass1": done1, "pass2": done2}
    assert (len(pass1), len(pass2)) == (16 - done1, 16 - done2)  # merged shards are not recomputed
    assert any(f"resumed after {after} of 16" in n for n in res.notes)
    assert_equal(res.basis, whole)  # shard order is kept: the same bits as an uninterrupted run
    assert stamp > 0 and not partial.exists()


@pytest.mark.parametrize("interval,written", [(0.0, True), (3600.0, False)])
def test_pass_1_is_checkpointed_at_its_end_once_the_interval_has_passed(store, tmp_path, monkeypatch, interval,
                                                                         written):
    """The end of pass 1 keeps the interval: a pass 1 shorter than it leaves no checkpoint to pass 2 (a run
    killed in pass 2 recomputes it: at most ``interval`` seconds of work)."""
    seen = []

    def failing(*args):
        seen.append((tmp_path / "b" / PARTIAL_DIR / "pass1.safetensors").is_file())
        raise LeadingTermsError("stop in pass 2")

    monkeypatch.setattr(stats, "attention_task", failing)
    with pytest.raises(LeadingTermsError, match="stop in pass 2"):
        run_stats(StatsConfig(corpus=str(store.path), out=str(tmp_path / "b"), shard_tokens=SHARD_TOKENS,
                              checkpoint_seconds=interval, progress=False))
    assert seen == [written]


@pytest.mark.slow
def test_corrupt_or_foreign_checkpoint_is_never_summed(store, tmp_path, monkeypatch):
    whole = run_stats(cfg_for(store, tmp_path / "whole")).basis
    out = tmp_path / "b"
    kill_during(store, out, "pass1", 6)
    for copy in ("c", "d"):  # the same checkpoint, for the truncated and the foreign cases
        shutil.copytree(out / PARTIAL_DIR, tmp_path / copy / PARTIAL_DIR)
    ck = out / PARTIAL_DIR / "pass1.safetensors"
    data = bytearray(ck.read_bytes())
    data[-20] ^= 0x55  # a few bits of the tensor bytes
    ck.write_bytes(bytes(data))
    pass1 = counting(monkeypatch, "bigram_task")
    res = run_stats(cfg_for(store, out))
    assert len(pass1) == 16 and res.basis.meta["shards_resumed"]["pass1"] == 0
    assert any("corrupt" in n and "checksum" in n for n in res.notes)
    assert_equal(res.basis, whole)
    ck = tmp_path / "c" / PARTIAL_DIR / "pass1.safetensors"
    ck.write_bytes(ck.read_bytes()[:100])
    res = run_stats(cfg_for(store, tmp_path / "c"))
    assert any("corrupt" in n for n in res.notes) and res.basis.meta["shards_resumed"]["pass1"] == 0
    res32 = run_stats(cfg_for(store, tmp_path / "d", dtype="float32"))  # other settings: another key
    assert res32.basis.meta["shards_resumed"]["pass1"] == 0 and not res32.notes


def test_checkpoint_round_trip_keeps_every_bit(tmp_path):
    s = random_sums("bigram", 30, 4, 0.1, 0, ids=torch.tensor([1, 4, 9, 29]))
    ck = Checkpoint(tmp_path, "pass1", "k", interval_s=0)
    ck.save(s, 3)
    loaded, done = ck.load([])
    full = s.full()
    assert done == 3 and loaded.ids is None and loaded.rows == 3
    for name in full.MATRICES + full.VECTORS:
        assert torch.equal(getattr(loaded, name), getattr(full, name)), name
    assert Checkpoint(tmp_path, "pass1", "other", interval_s=0).load([]) is None
    assert not (tmp_path / "pass1.safetensors").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_cuda_shards_equal_cpu(store, tmp_path):
    cpu = run_stats(cfg_for(store, tmp_path / "cpu")).basis
    gpu = run_stats(cfg_for(store, tmp_path / "gpu", device="cuda")).basis
    assert gpu.meta["device"].startswith("cuda")
    assert_close(gpu, cpu, floor=1e-3 * float(np.linalg.norm(cpu.M().numpy())))
