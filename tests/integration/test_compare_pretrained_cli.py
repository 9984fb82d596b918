"""``leadingterms compare-pretrained``: a run over local checkpoint folders, and one-line refusals."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from reference.ptiny import save_model

from leadingterms.cli import main
from leadingterms.persist import read_json


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {k: save_model(k, root / f"tiny-{k}") for k in ("neox", "gpt2", "bert")}


def test_run_over_local_checkpoints(tiny_steps, tiny_text, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["compare-pretrained", "--model", str(tiny_steps), "--revisions", "local", "--text", str(tiny_text),
               "--seq-len", "8", "--top-k", "10", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:-1]] == ["step0", "step1", "step4"]
    assert lines[-1].startswith(f"wrote {out}/index.json")
    index = read_json(out / "index.json")
    assert [e["step"] for e in index["entries"]] == [0, 1, 4]
    for label in ("step0", "step1", "step4"):
        rec = read_json(out / label / "similarity.json")
        assert rec["revision"] == label and rec["K"] == 10 and rec["load"]["folder"].endswith(label)
        assert set(rec["layers"][0]) >= {"layer", "resid_pre", "resid_mid", "resid_post", "qk_mean", "qk_heads"}
        assert len(rec["layers"][0]["qk_heads"]) == 4
        assert all(-1 - 1e-9 <= r[k] <= 1 + 1e-9 for r in rec["layers"] for k in ("resid_pre", "qk_mean"))
    assert len(read_json(out / "basis.json")["token_ids"]) == 10
    for stem in ("similarity_heatmap", "similarity_lines", "similarity_heads"):
        assert (out / f"{stem}.png").stat().st_size > 0 and (out / f"{stem}.svg").is_file()
    from leadingterms.pretrained.report import pretrained_section

    html = pretrained_section(out)
    assert html.startswith("<p>") and "<table>" in html and html.count("data:image/png;base64,") == 3
    png = html.split("data:image/png;base64,")[1].split('"')[0]
    assert base64.b64decode(png)[:4] == b"\x89PNG"


def test_several_models_and_tokenizer_cache(tiny_models, tiny_text, tmp_path):
    tiny_neox, tiny_gpt2 = tiny_models["neox"], tiny_models["gpt2"]
    out = tmp_path / "out"
    rc = main(["compare-pretrained", "--model", str(tiny_neox), "--model", str(tiny_gpt2), "--text", str(tiny_text),
               "--seq-len", "8", "--top-k", "6", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
               "--no-plots"])
    assert rc == 0
    assert read_json(out / "tiny-gpt2" / "similarity.json")["load"]["model_type"] == "gpt2"
    assert len(list((tmp_path / "cache").iterdir())) == 1  # same tokenizer + corpus: one cache entry


@pytest.mark.parametrize("case", ["unknown_model", "missing_revision", "k_too_large", "not_causal", "two_sources"])
def test_bad_input_one_line_exit_2(case, tiny_steps, tiny_models, tiny_text, tmp_path, capsys):
    tiny_bert = tiny_models["bert"]
    args = ["compare-pretrained", "--text", str(tiny_text), "--seq-len", "8", "--top-k", "10",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    if case == "unknown_model":
        args += ["--model", "no-such-org/no-such-model"]
        expect = "not found in the local Hugging Face cache"
    elif case == "missing_revision":
        args += ["--model", str(tiny_steps), "--revision", "step2"]
        expect = "revision 'step2' not found"
    elif case == "k_too_large":
        args = [a if a != "10" else "500" for a in args] + ["--model", str(tiny_steps / "step0")]
        expect = "larger than the tokenizer's vocabulary"
    elif case == "not_causal":
        args += ["--model", str(tiny_bert)]
        expect = "not a causal language model"
    else:
        args += ["--jsonl", str(tiny_text), "--model", str(tiny_steps / "step0")]
        expect = "give one source, not --text and --jsonl"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err, err


def test_refuses_before_allocating_when_memory_is_short(tiny_steps, tiny_text, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LEADINGTERMS_MAX_MEMORY_SHARE", "1e-12")
    rc = main(["compare-pretrained", "--model", str(tiny_steps / "step0"), "--text", str(tiny_text), "--seq-len", "8",
               "--top-k", "10", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "lower --top-k" in err, err
    assert not (tmp_path / "out").exists()
