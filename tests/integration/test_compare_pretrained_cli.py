"""``leadingterms compare-pretrained``: a run over local checkpoint folders, and one-line refusals."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from helpers import render_in_chromium
from reference.ptiny import save_model

from leadingterms.cli import main
from leadingterms.persist import read_json


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {k: save_model(k, root / f"tiny-{k}") for k in ("neox", "gpt2", "bert")}


@pytest.mark.slow
def test_run_over_local_checkpoints(tiny_steps, tiny_text, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["compare-pretrained", "--model", str(tiny_steps), "--revisions", "local", "--text", str(tiny_text),
               "--seq-len", "8", "--top-k", "10", "--cache-dir", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("each similarity as score/null/CKA")
    assert [ln.split(":")[0] for ln in lines[1:-1]] == ["step0", "step1", "step4"]
    assert lines[-1] == (f"wrote {out / 'report.html'} (open it in a browser); data: {out / 'index.json'}, "
                         f"{out / 'step0' / 'similarity.json'} … (3 checkpoints), 3 figures (PNG + SVG)")
    assert "<" not in "".join(lines)  # no placeholder like <label> in what is printed
    # every score next to its null and its token-centred variant, on the console
    rec1 = read_json(out / "step1" / "similarity.json")
    mean = lambda key, sub=None: sum((r[sub][key] if sub else r[key]) for r in rec1["layers"]) / 2  # noqa: E731
    want = f"resid_post {mean('resid_post'):.3f}/{mean('resid_post', 'null'):.3f}/" \
           f"{mean('resid_post', 'token_centred'):.3f}"
    assert want in lines[2], (want, lines[2])
    ml = rec1["model_level"]
    assert f"direct_cos {ml['direct_cos']:.3f}/{ml['direct_cos_null']:.3f}/–" in lines[2]
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
    # the standalone page: every table groups score | null | CKA under each metric, per layer too
    page = (out / "report.html").read_text(encoding="utf-8")
    for sid in ("setup", "scores", "layers", "figures"):
        assert f'<section id="{sid}">' in page
    n_tables = page.count("<table>")
    assert n_tables == 2 + 2 + 3  # setup (2), layer means and model level, one per checkpoint
    assert page.count('<th colspan="3" class="group">') == 4 + 4 + 3 * 4
    assert page.count("<th>score</th><th>null</th><th>CKA</th>") == 4 + 4 + 3 * 4
    assert "&lt;label&gt;" not in page and "<label>" not in page
    render_in_chromium(out / "report.html", tmp_path, min_images=3)


def test_several_models_and_tokenizer_cache(tiny_models, tiny_text, tmp_path):
    tiny_neox, tiny_gpt2 = tiny_models["neox"], tiny_models["gpt2"]
    out = tmp_path / "out"
    rc = main(["compare-pretrained", "--model", str(tiny_neox), "--model", str(tiny_gpt2), "--text", str(tiny_text),
               "--seq-len", "8", "--top-k", "6", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
               "--no-plots"])
    assert rc == 0
    assert read_json(out / "tiny-gpt2" / "similarity.json")["load"]["model_type"] == "gpt2"
    assert "No figures (compare-pretrained ran with --no-plots)" in (out / "report.html").read_text(encoding="utf-8")
    assert not list(out.glob("*.png"))
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
