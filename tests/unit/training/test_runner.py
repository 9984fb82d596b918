"""The training runner against the theory and an independent GD replay; resume; bad inputs."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from reference.naive import gd_train, naive_loss

from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import compare
from leadingterms.persist import load_tensors
from leadingterms.predict import closed_form
from leadingterms.training import TrainConfig, load_run, train

ALL_KEYS = {"W_O", "layers.0.W", "layers.0.V", "layers.0.P", "layers.1.W", "layers.1.V", "layers.1.P"}


def cfg_for(store, out, **kw):
    base = dict(corpus=str(store.path), out=str(out), layers=2, lr=1e-3, batch_size=store.N, steps=8,
                log_every=4, dtype="float64", progress=False)
    base.update(kw)
    return TrainConfig(**base)


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


# ----------------------------------------------------------------------------- theory


def test_full_batch_reproduces_closed_forms_and_second_order_is_better(store, tmp_path):
    res = train(cfg_for(store, tmp_path / "run"))
    run = load_run(tmp_path / "run")
    assert [r["step"] for r in run.metrics] == [0, 4, 8]
    assert run.metrics[0]["loss"] == pytest.approx(math.log(store.V), rel=1e-12)  # zero init: uniform
    assert run.metrics[0]["closed_form"] == {}  # every learned weight is still exactly zero
    final = res.final
    assert set(final["closed_form"]) == ALL_KEYS and set(final["shadow"]) == ALL_KEYS
    for name, m in final["closed_form"].items():
        assert m["rel"] < 1e-3, name
        assert m["rel"] > 1e-9, name  # a real (O(eta)) deviation, not an identity
        assert 1 - m["cos"] < 1e-5
    # full batch: the shadow is the closed form
    for name in ALL_KEYS:
        assert final["shadow"][name]["rel"] == pytest.approx(final["closed_form"][name]["rel"], rel=1e-6)
    # docs/theory.md §4 beats §3 for W_O and V by a wide margin
    assert set(final["second_order"]) == {"W_O", "layers.0.V", "layers.1.V"}
    for name in final["second_order"]:
        assert final["second_order"][name]["rel"] < final["closed_form"][name]["rel"] / 10, name
    # loss went down, val_loss is logged (the store has validation sequences)
    assert final["loss"] < run.metrics[0]["loss"] and final["val_loss"] is not None
    # summary: horizon present for every tracked weight, never crossed here
    hz = res.summary["validity_horizon"]["closed_form"]
    assert set(hz) == ALL_KEYS and all(v == {"5%": None, "20%": None} for v in hz.values())
    assert res.summary["theory_caveats"] == []


def test_shadow_beats_closed_form_under_sgd(store, tmp_path):
    # 12 sequences, batches of 3: 4 steps per epoch; 10 steps end mid-epoch
    res = train(cfg_for(store, tmp_path / "run", batch_size=3, lr=1e-2, steps=10, log_every=10))
    final = res.final
    for name in ALL_KEYS:
        assert final["shadow"][name]["rel"] * 10 <= final["closed_form"][name]["rel"], name


def test_full_batch_equals_naive_gd_replay(store, tmp_path):
    L, steps = 2, 20
    res = train(cfg_for(store, tmp_path / "run", lr=1.0, steps=steps, log_every=10, track=()))
    model = load_run(res.run_dir).load_checkpoint(steps)
    tokens = np.asarray(store.tokens, dtype=np.int64)
    ref = gd_train(tokens, store.V, L, 1.0, steps)
    learned = model.weights()
    for name, want in ref.items():
        assert rel(learned[name], want) < 1e-8, name
    assert res.final["loss"] == pytest.approx(float(naive_loss(ref, torch.as_tensor(tokens))), rel=1e-10)
    assert res.final["closed_form"] is None and res.final["shadow"] is None


def test_grad_accum_step_is_the_union_batch(store_factory, tmp_path):
    """batch 2 x accum 3 == batch 6 (same data order: 6 sequences per step)."""
    store = store_factory(tmp_path / "c", N=12)
    a = train(cfg_for(store, tmp_path / "a", batch_size=2, grad_accum=3, lr=0.5, steps=5, log_every=5))
    b = train(cfg_for(store, tmp_path / "b", batch_size=6, grad_accum=1, lr=0.5, steps=5, log_every=5))
    wa = load_run(a.run_dir).load_checkpoint(5).weights()
    wb = load_run(b.run_dir).load_checkpoint(5).weights()
    assert all(rel(wa[k], wb[k]) < 1e-12 for k in wa)
    # the shadow saw the same union batches
    assert a.final["shadow"].keys() == b.final["shadow"].keys()
    for k, m in a.final["shadow"].items():
        assert m["rel"] == pytest.approx(b.final["shadow"][k]["rel"], rel=1e-9), k


def test_epochs_and_layer_spread(store, tmp_path):
    res = train(cfg_for(store, tmp_path / "run", layers=1, batch_size=5, steps=None, epochs=2, log_every=1,
                         track=()))
    run = load_run(res.run_dir)
    assert run.info["steps_per_epoch"] == 3 and res.steps == 6
    assert [r["epoch"] for r in run.metrics] == pytest.approx([s / 3 for s in range(7)])
    assert all(r["layer_spread"] is None for r in run.metrics)


# ----------------------------------------------------------------------------- checkpoints, resume


class Killed(Exception):
    pass


def _kill_at(k):
    def hook(step):
        if step == k:
            raise Killed

    return hook


def _assert_same_run(a: Path, b: Path, step: int):
    assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
    ta, ma = load_tensors(a / "checkpoints" / f"step_{step:06d}.safetensors")
    tb, mb = load_tensors(b / "checkpoints" / f"step_{step:06d}.safetensors")
    assert set(ta) == set(tb)
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    assert ma["data_order"] == mb["data_order"]


@pytest.mark.parametrize("optimizer,track", [("sgd", ("closed_form", "shadow", "second_order")), ("adam", ())])
def test_resume_is_bit_identical_after_simulated_kill(store, tmp_path, optimizer, track):
    kw = dict(batch_size=2, grad_accum=2, lr=0.05, steps=9, log_every=3, checkpoint_every=5, keep_last=1,
              optimizer=optimizer, track=track, dtype="float32", init="normal:0.1", seed=7)
    ref = train(cfg_for(store, tmp_path / "ref", **kw))
    with pytest.raises(Killed):
        train(cfg_for(store, tmp_path / "run", **kw), on_step=_kill_at(7))
    run_dir = tmp_path / "run"
    assert not (run_dir / "summary.json").exists()
    assert [r["step"] for r in load_run(run_dir).metrics] == [0, 3, 6]
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 9, "loss": 1.2')  # a torn line, as from a kill mid-write
    res = train(cfg_for(store, run_dir, resume=True, **kw))
    assert res.resumed_from == 5  # checkpoints 0, 1, 4, 5: the last one
    _assert_same_run(tmp_path / "ref", run_dir, 9)
    assert res.summary["validity_horizon"] == ref.summary["validity_horizon"]
    if optimizer == "adam":
        assert any("outside the theory" in c for c in res.summary["theory_caveats"])
        groups, _ = load_run(run_dir).checkpoint_state(9)
        assert any(k.endswith("exp_avg_sq") for k in groups["optim"])


_KILLABLE = """
import sys, time
from leadingterms.training import TrainConfig, train
cfg = TrainConfig(**eval(sys.argv[1]))
train(cfg, on_step=lambda s: time.sleep(0.03))  # slow enough to be killed at a random point mid-run
"""


@pytest.mark.slow
def test_resume_after_sigkill(store, tmp_path):
    """A real SIGKILL of a training process (possibly mid-write), then --resume."""
    kw = dict(batch_size=3, lr=0.05, steps=16, log_every=2, checkpoint_every=1, keep_last=2, track=())
    ref = tmp_path / "ref"
    train(cfg_for(store, ref, **kw))
    run_dir = tmp_path / "run"
    env = dict(os.environ, LEADINGTERMS_NO_PROGRESS="1")
    spec = repr(dict(corpus=str(store.path), out=str(run_dir), layers=2, dtype="float64", progress=False, **kw))
    proc = subprocess.Popen([sys.executable, "-c", _KILLABLE, spec], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 60
    target = run_dir / "checkpoints" / "step_000004.json"
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    killed_at = load_run(run_dir).checkpoints
    assert 4 <= max(killed_at) < 16
    res = train(cfg_for(store, run_dir, resume=True, **kw))
    assert res.resumed_from == max(killed_at)
    _assert_same_run(ref, run_dir, 16)


def test_logged_metrics_reproduce_from_checkpoints(store, tmp_path):
    # checkpoints 0, 1, 4 (early: the shadow is replayed), 3, 6 (periodic: it is stored), 8 (last)
    res = train(cfg_for(store, tmp_path / "run", batch_size=4, lr=0.02, steps=8, log_every=2, keep_last=10,
                        checkpoint_every=3))
    run = load_run(res.run_dir)
    assert sorted(run.checkpoints) == [0, 1, 3, 4, 6, 8]
    assert [s for s in run.checkpoints if run.checkpoint_state(s)[1]["shadow"]] == [3, 6, 8]
    basis = run.basis()
    by_step = {r["step"]: r for r in run.metrics}
    for s in (4, 6, 8):  # logged and checkpointed (4: its shadow replayed from step 3)
        got = compare(run.load_checkpoint(s).weights(), closed_form(basis, s, 0.02, 2))
        for name, m in got.items():
            logged = by_step[s]["closed_form"][name]
            assert m["rel"] == pytest.approx(logged["rel"], rel=1e-6, abs=1e-12)
            assert m["cos"] == pytest.approx(logged["cos"], rel=1e-6)
        shadow = compare(run.load_checkpoint(s).weights(), run.shadow_weights(s))
        assert shadow["W_O"]["rel"] == pytest.approx(by_step[s]["shadow"]["W_O"]["rel"], rel=1e-6)
    with pytest.raises(LeadingTermsError, match="no checkpoint at step 5"):
        run.load_checkpoint(5)


def test_replayed_shadow_is_bit_identical_to_the_stored_one(store, tmp_path):
    kw = dict(batch_size=3, lr=0.05, steps=9, log_every=3, keep_last=20)
    every = load_run(train(cfg_for(store, tmp_path / "a", checkpoint_every=1, **kw)).run_dir)
    sparse = load_run(train(cfg_for(store, tmp_path / "b", **kw)).run_dir)  # default: early ones replayed
    assert not sparse.checkpoint_state(4)[1]["shadow"] and every.checkpoint_state(4)[1]["shadow"]
    assert sorted(sparse.checkpoints) == [0, 1, 4, 9]
    for s in (1, 4, 9):
        a, b = every.shadow_weights(s), sparse.shadow_weights(s)
        assert all(torch.equal(a[k], b[k]) for k in a), s
    assert (tmp_path / "a" / "metrics.jsonl").read_bytes() == (tmp_path / "b" / "metrics.jsonl").read_bytes()


def test_basis_cache_and_stats_dir(store, store_factory, tmp_path):
    train(cfg_for(store, tmp_path / "a", steps=3, log_every=3))
    assert (tmp_path / "a" / "basis").is_dir()
    # --stats pointing at a basis of this corpus: same metrics
    b = train(cfg_for(store, tmp_path / "b", steps=3, log_every=3, stats=str(tmp_path / "a" / "basis")))
    assert not (tmp_path / "b" / "basis").exists()
    assert b.final["closed_form"] == load_run(tmp_path / "a").metrics[-1]["closed_form"]
    other = store_factory(tmp_path / "other", seed=5)
    with pytest.raises(LeadingTermsError, match="does not belong to --corpus"):
        train(cfg_for(other, tmp_path / "c", steps=3, stats=str(tmp_path / "a" / "basis")))


# ----------------------------------------------------------------------------- refusals


def test_divergence_stops_with_one_line_and_keeps_good_checkpoint(store, tmp_path):
    cfg = cfg_for(store, tmp_path / "run", lr=1e30, init="normal:1", dtype="float32", steps=20, log_every=1,
                  batch_size=3)
    with pytest.raises(LeadingTermsError, match="diverged at step") as e:
        train(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "last good checkpoint" in msg
    run = load_run(tmp_path / "run")
    assert run.summary is not None and run.summary["diverged"]["step"] >= 1
    good = max(s for s in run.checkpoints if s < run.summary["diverged"]["step"])
    w = run.load_checkpoint(good).weights()
    assert all(bool(torch.isfinite(v).all()) for v in w.values())


def test_resume_refuses_other_config_or_corpus(store, store_factory, tmp_path):
    train(cfg_for(store, tmp_path / "run", steps=2, log_every=1, track=()))
    with pytest.raises(LeadingTermsError, match="already exists"):
        train(cfg_for(store, tmp_path / "run", steps=2, track=()))
    with pytest.raises(LeadingTermsError, match=r"config differs.*lr"):
        train(cfg_for(store, tmp_path / "run", steps=4, lr=0.5, track=(), resume=True))
    other = store_factory(tmp_path / "other", seed=9)
    with pytest.raises(LeadingTermsError, match="trained on corpus"):
        train(cfg_for(other, tmp_path / "run", steps=4, track=(), resume=True))
    # longer training is allowed, and --force starts over
    res = train(cfg_for(store, tmp_path / "run", steps=4, log_every=1, track=(), resume=True))
    assert res.resumed_from == 2 and [r["step"] for r in load_run(res.run_dir).metrics] == [0, 1, 2, 3, 4]
    res = train(cfg_for(store, tmp_path / "run", steps=1, log_every=1, track=(), force=True))
    assert res.resumed_from is None and load_run(res.run_dir).checkpoints.keys() == {0, 1}


@pytest.mark.parametrize("kw,match", [
    (dict(batch_size=0), "--batch-size must be a positive integer"),
    (dict(lr=0.0), "--lr must be"),
    (dict(lr=float("nan")), "--lr must be"),
    (dict(steps=None), "exactly one of --steps and --epochs"),
    (dict(epochs=2), "exactly one of --steps and --epochs"),
    (dict(batch_size=13), "exceeds the 12 training sequences"),
    (dict(init="normal:-1"), "bad --init"),
    (dict(optimizer="lbfgs"), "--optimizer must be"),
    (dict(track=("closed_form", "nope")), "--track must be one of"),
    (dict(corpus="/nonexistent/corpus"), "token store not found"),
])
def test_bad_inputs(store, tmp_path, kw, match):
    with pytest.raises(LeadingTermsError, match=match):
        train(cfg_for(store, tmp_path / "run", **kw))


# ----------------------------------------------------------------------------- estimates, policy, precision


def test_estimate_comes_before_the_first_step_and_matches_the_run(store, tmp_path):
    events: list[str] = []
    res = train(cfg_for(store, tmp_path / "run", batch_size=3, steps=5, log_every=5),
                on_note=lambda line: events.append("note: " + line), on_step=lambda s: events.append(f"step {s}"))
    first_step = events.index("step 1")
    notes = [e for e in events[:first_step] if e.startswith("note: estimate:")]
    assert len(notes) == 3 and "s per step" in notes[0] and "peak memory" in notes[1] and "checkpoints" in notes[2]
    assert res.estimate == [n[len("note: "):] for n in notes]
    est = res.summary["estimate"]
    assert est["step_s"] > 0 and est["log_s"] > 0 and est["memory_bytes"] > 0
    # what the policy wrote: early 0, 1, 4 and the last (5); the summary counts the bytes
    ckpt = tmp_path / "run" / "checkpoints"
    assert res.summary["checkpoints"] == [0, 1, 4, 5]
    on_disk = sum(p.stat().st_size for p in ckpt.iterdir())
    assert res.summary["checkpoint_bytes_written"] == res.summary["checkpoint_bytes_kept"] == on_disk
    assert est["disk_bytes"] >= on_disk


def test_dry_run_writes_nothing(store, tmp_path):
    res = train(cfg_for(store, tmp_path / "run", dry_run=True))
    assert res.dry_run and not (tmp_path / "run").exists()
    assert any("s per step" in line for line in res.estimate)


def test_refuses_memory_and_disk_before_writing(store, tmp_path, monkeypatch):
    monkeypatch.setenv("LEADINGTERMS_MAX_MEMORY_SHARE", "1e-9")
    with pytest.raises(LeadingTermsError, match=r"training 2 layer\(s\) at V=7.*needs about"):
        train(cfg_for(store, tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    monkeypatch.delenv("LEADINGTERMS_MAX_MEMORY_SHARE")
    import leadingterms.budget as budget

    monkeypatch.setattr(budget, "free_disk_bytes", lambda path: 1000)
    with pytest.raises(LeadingTermsError, match="of disk") as e:
        train(cfg_for(store, tmp_path / "run"))
    assert "\n" not in str(e.value) and not (tmp_path / "run").exists()


def test_logged_loss_default_sample(store, tmp_path):
    """Default: the loss over the sequences of 2 steps (here 2 x 2 = 4 of 12), the same ones every log."""
    from leadingterms.model import dataset_loss

    res = train(cfg_for(store, tmp_path / "run", batch_size=2, steps=2, log_every=2, track=()))
    model = load_run(res.run_dir).load_checkpoint(2)
    assert res.final["loss"] == pytest.approx(dataset_loss(model, store.tokens[:4]), rel=1e-12)
    assert res.final["loss"] != pytest.approx(dataset_loss(model, store.tokens), rel=1e-12)
    assert res.final["val_loss"] == pytest.approx(dataset_loss(model, store.val_tokens), rel=1e-12)  # 3 < 4


def test_resume_from_an_early_checkpoint_replays_the_shadow(store, tmp_path):
    kw = dict(batch_size=2, lr=0.05, steps=6, log_every=1, dtype="float32", init="normal:0.1", seed=3)
    train(cfg_for(store, tmp_path / "ref", **kw))
    with pytest.raises(Killed):
        train(cfg_for(store, tmp_path / "run", **kw), on_step=_kill_at(5))
    res = train(cfg_for(store, tmp_path / "run", resume=True, **kw))
    assert res.resumed_from == 4  # checkpoints 0, 1, 4: the shadow was not stored, it is replayed
    _assert_same_run(tmp_path / "ref", tmp_path / "run", 6)


def test_bf16_precision_trains_close_to_fp32(store, tmp_path):
    kw = dict(batch_size=4, lr=0.5, steps=6, log_every=6, dtype="float32", track=("shadow",))
    ref = train(cfg_for(store, tmp_path / "fp32", **kw))
    res = train(cfg_for(store, tmp_path / "bf16", precision="bf16", **kw))
    a, b = (load_run(r.run_dir).load_checkpoint(6).weights() for r in (ref, res))
    assert all(b[k].dtype == torch.float32 for k in b)  # float32 master weights
    for k in a:
        assert 0 < rel(b[k], a[k]) < 0.05, k  # bfloat16 compute: close, not identical
    assert res.final["loss"] == pytest.approx(ref.final["loss"], rel=1e-2)
    assert res.final["shadow"]["W_O"]["rel"] == pytest.approx(ref.final["shadow"]["W_O"]["rel"], rel=0.2)


def test_precision_needs_float32_master_weights_and_tf32_notes_cpu(store, tmp_path):
    with pytest.raises(LeadingTermsError, match="--precision bf16 keeps float32 master weights"):
        train(cfg_for(store, tmp_path / "a", precision="bf16"))  # cfg_for uses float64
    res = train(cfg_for(store, tmp_path / "b", precision="tf32", dtype="float32", steps=1, track=()))
    assert any("tf32 affects CUDA matmuls only" in n for n in res.notes)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_cuda_training_matches_cpu(store, tmp_path, precision):
    kw = dict(batch_size=4, lr=0.05, steps=4, log_every=2, dtype="float32")
    cpu = train(cfg_for(store, tmp_path / "cpu", **kw))
    gpu = train(cfg_for(store, tmp_path / "gpu", device="cuda", precision=precision, **kw))
    a, b = (load_run(r.run_dir).load_checkpoint(4).weights() for r in (cpu, gpu))
    tol = 1e-5 if precision == "fp32" else 5e-2
    assert all(rel(b[k], a[k]) < tol for k in a)
    for kind in ("closed_form", "shadow", "second_order"):
        for name, m in cpu.final[kind].items():
            assert gpu.final[kind][name]["rel"] == pytest.approx(m["rel"], rel=tol, abs=1e-9), (kind, name)
