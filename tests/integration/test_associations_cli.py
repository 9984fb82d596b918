"""``leadingterms associations``: printed top-k, --column, --basis, unknown tokens, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
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
    assert "invalid choice" in capsys.readouterr().err
