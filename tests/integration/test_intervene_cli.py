from __future__ import annotations

import json

import pytest

from leadingterms.cli import main


@pytest.fixture(scope="module")
def tiny_run(run_factory):
    return run_factory("iv", layers=2, steps=3)


def test_intervene_cli_table_and_json(capsys, tiny_run):
    assert main(["intervene", "--run", str(tiny_run), "--max-sequences", "8"]) == 0
    out = capsys.readouterr().out
    for name in ("W_O", "layers.0.W", "layers.0.V", "layers.0.P", "layers.1.P"):
        assert f"\n{name} " in out
    res = json.loads((tiny_run / "intervention.json").read_text())
    assert res["step"] == 3 and res["n_sequences"] == 8 and len(res["rows"]) == 7
    assert main(["intervene", "--run", str(tiny_run), "--step", "1"]) == 0
    res = json.loads((tiny_run / "intervention.json").read_text())
    assert res["step"] == 1 and res["n_sequences"] == 20
    assert res["control"] == "none" and "loss_control" not in res["rows"][0]


def test_intervene_cli_random_control(capsys, tiny_run):
    args = ["intervene", "--run", str(tiny_run), "--max-sequences", "8", "--control", "random",
            "--control-seeds", "2", "--seed", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "random, Δloss mean" in out and "seeds [4, 5]" in out
    res = json.loads((tiny_run / "intervention.json").read_text())
    assert res["control"] == "random" and res["control_seeds"] == [4, 5]
    assert all(len(r["loss_control"]) == 2 for r in res["rows"])
    assert main(args[:-4] + ["--control", "wrong"]) == 2


@pytest.mark.parametrize("args, msg", [
    (["--step", "0"], "--step 0 is the initialisation (nothing learned yet); choose a later checkpoint"),
    (["--step", "7"], "no checkpoint at step 7"),
    (["--max-sequences", "0"], "--max-sequences must be a positive integer"),
])
def test_intervene_cli_errors_one_line(capsys, tiny_run, args, msg):
    assert main(["intervene", "--run", str(tiny_run), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and msg in err


def test_intervene_cli_missing_run(capsys, tmp_path):
    assert main(["intervene", "--run", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run directory not found" in err


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device")
def test_intervene_cli_on_cuda_matches_cpu(capsys, tiny_run):
    assert main(["intervene", "--run", str(tiny_run), "--max-sequences", "8"]) == 0
    cpu = json.loads((tiny_run / "intervention.json").read_text())
    assert main(["intervene", "--run", str(tiny_run), "--max-sequences", "8", "--device", "cuda"]) == 0
    gpu = json.loads((tiny_run / "intervention.json").read_text())
    assert gpu["original_loss"] == pytest.approx(cpu["original_loss"], rel=1e-5)
    for a, b in zip(cpu["rows"], gpu["rows"], strict=True):
        assert b["loss_removed"] == pytest.approx(a["loss_removed"], rel=1e-5)
        assert b["loss_replaced"] == pytest.approx(a["loss_replaced"], rel=1e-5)
