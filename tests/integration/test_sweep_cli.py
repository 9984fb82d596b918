"""``leadingterms sweep``: tiny grids run in-process and on a real Dask LocalCluster; resume; one-line errors."""

from __future__ import annotations

import json

import pytest
from helpers import one_line_error, run_cli

from leadingterms.persist import read_json


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from leadingterms.corpus.pipeline import CorpusConfig, run_corpus

    out = tmp_path_factory.mktemp("sweepcorpus") / "stories"
    run_corpus(CorpusConfig(synthetic_docs=24, seq_len=10, out=str(out)))
    return out


def _sweep(capsys, corpus, out, *extra):
    return run_cli(capsys, "sweep", "--corpora", corpus, "--lrs", "0.5,2", "--batch-sizes", 8, "--layer-counts", 1,
                   "--log-every", 1, "--out", out, *extra)


def test_sweep_runs_skips_finished_and_resumes_longer(tiny_corpus, tmp_path, capsys):
    out = tmp_path / "sw"
    rc, stdout, err = _sweep(capsys, tiny_corpus, out, "--steps", 3)
    assert rc == 0, err
    names = ["stories-lr0.5-bs8-L1-seed0", "stories-lr2.0-bs8-L1-seed0"]
    lines = stdout.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:2]] == names and all(": ran" in ln for ln in lines[:2])
    assert "; shadow horizon W_O 20%: " in lines[0]
    assert lines[-1] == f"next: leadingterms compare {out} --out {out}/compare"
    for n in names:  # every point is an ordinary run folder, finished
        summary = read_json(out / "runs" / n / "summary.json")
        assert summary["final"]["step"] == 3 and summary["horizon"]["headline"] == "shadow"
    assert (out / "bases" / "stories" / "basis.json").is_file()  # one basis per corpus, given to each run
    assert read_json(out / "runs" / names[0] / "config.json")["config"]["stats"] == str(out / "bases" / "stories")
    record = read_json(out / "sweep.json")
    assert set(record["points"]) == set(names) and record["points"][names[1]]["lr"] == 2.0
    metrics = (out / "runs" / names[0] / "metrics.jsonl").read_bytes()

    rc, stdout, _ = _sweep(capsys, tiny_corpus, out, "--steps", 3)  # again: nothing to do
    assert rc == 0 and stdout.count("skipped (finished)") == 2
    assert (out / "runs" / names[0] / "metrics.jsonl").read_bytes() == metrics

    rc, stdout, _ = _sweep(capsys, tiny_corpus, out, "--steps", 5)  # longer: continued from the last checkpoint
    assert rc == 0 and stdout.count(": resumed") == 2
    assert (out / "runs" / names[0] / "metrics.jsonl").read_bytes().startswith(metrics)
    assert read_json(out / "runs" / names[0] / "summary.json")["final"]["step"] == 5

    one_line_error(capsys, "sweep", "--corpora", tiny_corpus, "--lrs", "0.5", "--batch-sizes", 8, "--layer-counts", 1,
                   "--log-every", 2, "--steps", 5, "--out", out, match="was run with other settings (log_every")


@pytest.mark.slow
def test_sweep_on_dask_workers_equals_in_process(tiny_corpus, tmp_path, capsys):
    rc, _, err = _sweep(capsys, tiny_corpus, tmp_path / "seq", "--steps", 2, "--track", "shadow")
    assert rc == 0, err
    rc, stdout, err = _sweep(capsys, tiny_corpus, tmp_path / "par", "--steps", 2, "--track", "shadow", "--workers", 2)
    assert rc == 0, err
    assert stdout.count(": ran") == 2
    assert not (tmp_path / "par" / "bases").exists()  # the shadow needs no full-corpus basis
    for name in ("stories-lr0.5-bs8-L1-seed0", "stories-lr2.0-bs8-L1-seed0"):
        # the same run; one thread per worker sums float64 metrics in another order (last-digit differences)
        seq, par = (_numbers([json.loads(line) for line in (tmp_path / d / "runs" / name / "metrics.jsonl")
                              .read_text().splitlines()]) for d in ("seq", "par"))
        assert [k for k, _ in seq] == [k for k, _ in par]
        assert [v for _, v in par] == pytest.approx([v for _, v in seq], rel=1e-9, abs=1e-12)


def _numbers(obj, key=""):
    """[(path, number)] of every number in a JSON value, depth first."""
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in _numbers(v, f"{key}.{k}")]
    if isinstance(obj, list):
        return [x for i, v in enumerate(obj) for x in _numbers(v, f"{key}[{i}]")]
    return [(key, float(obj))] if isinstance(obj, (int, float)) and not isinstance(obj, bool) else []


@pytest.mark.parametrize("args, msg", [
    (["--lrs", "0.1,x"], "invalid"),
    (["--lrs", "0"], "--lrs must be a finite number > 0"),
    (["--batch-sizes", "1000"], "--batch-sizes 1000 exceeds the"),
    (["--epochs", "1"], "argument --epochs: not allowed with argument --steps"),
])
def test_sweep_bad_input_one_line(tiny_corpus, tmp_path, capsys, args, msg):
    base = {"--corpora": str(tiny_corpus), "--lrs": "0.5", "--batch-sizes": "8", "--layer-counts": "1",
            "--steps": "2", "--out": str(tmp_path / "sw")}
    for a, v in zip(args[::2], args[1::2], strict=True):
        base[a] = v
    argv = ["sweep", *[x for kv in base.items() for x in kv]]
    if "invalid" == msg:  # argparse's own message
        assert run_cli(capsys, *argv)[0] == 2
    else:
        one_line_error(capsys, *argv, match=msg)
    assert not (tmp_path / "sw" / "runs").exists()
