"""``leadingterms associations``: printed top-k, --column, --basis, unknown tokens, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import one_line_error, run_cli
from reference.naive import NaiveBasis, markov_corpus

from leadingterms.cli import main

V_ = 8
VOCAB = ["the", "bird", "flew", "away", "cat", "sat", "on", "mat"]


@pytest.fixture(scope="module")
def corpus():
    return markov_corpus(V_, 6, 20, seed=11)


@pytest.fixture(scope="module")
def stats_dir(tmp_path_factory, corpus) -> Path:
    from leadingterms.basis import compute_basis, save_basis

    d = tmp_path_factory.mktemp("stats")
    save_basis(d, compute_basis(corpus, V_, vocab=VOCAB, progress=False))
    return d


def listed(out: str) -> list[str]:
    """Token strings of the printed ranking (lines after the header)."""
    lines = out.strip().splitlines()[1:]
    return [line.split()[1].strip("'") for line in lines]


@pytest.mark.parametrize("column", [False, True])
@pytest.mark.parametrize("name", ["bigram", "value", "composition", "interchange-prev"])
def test_associations_prints_reference_ranking(stats_dir, corpus, capsys, name, column) -> None:
    ref = NaiveBasis(corpus, V_)
    M = {
        "bigram": ref.B_bar,
        "value": ref.value_direction(),
        "composition": ref.G_bar(),
        "interchange-prev": ref.interchange_prev(),
    }[name]
    i = VOCAB.index("cat")
    vec = M[:, i] if column else M[i, :]
    args = ["associations", "--stats", str(stats_dir), "cat", "--basis", name, "--k", "3"]
    assert main(args + (["--column"] if column else [])) == 0
    out = capsys.readouterr().out
    assert ("column of 'cat'" if column else "row of 'cat'") in out
    got = listed(out)
    assert len(got) == 3
    values = [vec[VOCAB.index(t)].item() for t in got]
    assert values == sorted(values, reverse=True)
    assert values[0] == pytest.approx(vec.max().item(), rel=1e-9)


def test_associations_unknown_token(stats_dir, capsys) -> None:
    assert main(["associations", "--stats", str(stats_dir), "brid"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'bird'" in err


def test_associations_bad_inputs(stats_dir, tmp_path, capsys) -> None:
    assert main(["associations", "--stats", str(tmp_path / "none"), "cat"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["associations", "--stats", str(stats_dir), "cat", "--k", "0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["associations", "--stats", str(stats_dir), "cat", "--basis", "nope"]) == 2
    assert "--basis must be one of" in capsys.readouterr().err


def test_many_tokens_many_bases_normalised_json(stats_dir, corpus, capsys) -> None:
    from reference.readouts import naive_readout, naive_top

    ref = NaiveBasis(corpus, V_)
    rc, out, _ = run_cli(capsys, "associations", "--stats", stats_dir, "cat", "bird", "--basis", "bigram,value",
                         "--k", "3", "--normalize", "freq", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["normalize"] == "freq" and doc["k"] == 3 and doc["step"] is None
    assert [(x["token"], x["readout"]) for x in doc["lists"]] == [("cat", "bigram"), ("cat", "value"),
                                                                  ("bird", "bigram"), ("bird", "value")]
    pi = ref.Pi.numpy()
    for x in doc["lists"]:
        Z = ref.B_bar.numpy() if x["readout"] == "bigram" else ref.value_direction().numpy()
        want = naive_top(naive_readout(Z, VOCAB.index(x["token"]), False, "freq", pi), 3)
        assert [e["value"] for e in x["top"]] == pytest.approx([v for _, v in want], rel=1e-10)
        assert [e["rank"] for e in x["top"]] == [1, 2, 3] and x["direction"] == "row"
    rc, out, _ = run_cli(capsys, "associations", "--stats", stats_dir, "cat", "--basis", "all", "--k", "2")
    assert rc == 0 and out.count("row of 'cat'") == 7


def test_learned_weights_of_a_run(run_factory, capsys) -> None:
    run = run_factory("assoc_run", layers=2, steps=2)
    rc, out, _ = run_cli(capsys, "associations", "--run", run, "the", "--basis", "none", "--k", "3", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["step"] == 2
    assert [x["readout"] for x in doc["lists"]] == ["W_O", "V^(0)", "V^(0)·W_O", "W^(0)", "V^(1)", "V^(1)·W_O",
                                                     "W^(1)"]
    from leadingterms.training import load_run

    r = load_run(run)
    w = r.load_checkpoint(2).weights()
    vocab = r.basis().vocab
    i = vocab.index("the")
    want = (w["layers.1.V"].double() @ w["W_O"].double())[i]
    got = next(x for x in doc["lists"] if x["readout"] == "V^(1)·W_O")["top"]
    assert [e["value"] for e in got] == pytest.approx(torch.sort(want, descending=True).values[:3].tolist(),
                                                       rel=1e-5)
    rc, out, _ = run_cli(capsys, "associations", "--run", run, "--step", "1", "the", "--learned", "VW_O",
                         "--layer", "1", "--k", "2")
    assert rc == 0 and "V^(1)·W_O V·W_O at step 1: row of 'the'" in out and "bigram B̄: row" in out
    one_line_error(capsys, "associations", "--run", run, "the", "--layer", "5", match="layer 5")
    one_line_error(capsys, "associations", "--run", run, "the", "--step", "7", match="no checkpoint at step 7")


def test_run_options_need_a_run(stats_dir, capsys) -> None:
    one_line_error(capsys, "associations", "--stats", stats_dir, "cat", "--step", "1", match="--run")
    one_line_error(capsys, "associations", "cat", match="--stats DIR")
    one_line_error(capsys, "associations", "--stats", stats_dir, "cat", "--basis", "none", match="nothing to read")


def test_a_basis_of_another_corpus_next_to_a_run_is_refused(run_factory, tmp_path, capsys) -> None:
    """--stats next to --run must be of the run's corpus: with the same V it was read silently, row ids of one
    vocabulary labelled with the other's strings."""
    from leadingterms.basis import compute_basis, save_basis
    from leadingterms.training import load_run

    run = run_factory("assoc_run", layers=2, steps=2)
    own = load_run(run).basis()
    other = compute_basis(markov_corpus(own.V, own.T, 20, seed=5), own.V, vocab=list(own.vocab), progress=False)
    other.meta["corpus_hash"] = "f" * 16
    save_basis(tmp_path / "other", other)
    for cmd in (["associations", "--run", run, "the"], ["explore", "--run", run, "--out", tmp_path / "p.html"]):
        one_line_error(capsys, *cmd, "--stats", tmp_path / "other",
                       match=f"was computed from corpus {'f' * 16}; run {run} was trained on")
    assert not (tmp_path / "p.html").exists()
