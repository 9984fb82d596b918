"""pretrain-small: log-spaced HF checkpoints that compare-pretrained can sweep."""

from __future__ import annotations

import re

import pytest

from leadingterms.cli import main
from leadingterms.config import check_config
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import read_json
from leadingterms.pretrained.suite import SuiteConfig, checkpoint_steps, lr_at


def test_checkpoint_schedule_and_lr():
    assert checkpoint_steps(8) == [0, 1, 2, 4, 8]
    assert checkpoint_steps(10) == [0, 1, 2, 4, 8, 10]
    assert checkpoint_steps(1) == [0, 1]
    cfg = SuiteConfig(out="x", steps=100, lr=1.0, warmup=10)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(100, cfg) == pytest.approx(0.1)
    with pytest.raises(LeadingTermsError):
        check_config(SuiteConfig(out="x", d_model=30, heads=4))


@pytest.mark.slow
def test_tiny_suite_then_compare(tiny_text, tmp_path, capsys):
    suite = tmp_path / "suite"
    assert main(["pretrain-small", "--text", str(tiny_text), "--out", str(suite), "--steps", "3",
                 "--layers", "1", "--d-model", "16", "--heads", "2", "--vocab-size", "60", "--seq-len", "16",
                 "--batch-size", "4"]) == 0
    rec = read_json(suite / "suite.json")
    assert rec["checkpoints"] == ["step0", "step1", "step2", "step3"] and len(rec["loss"]) == 3
    for s in rec["checkpoints"]:
        assert (suite / s / "config.json").is_file() and (suite / s / "tokenizer.json").is_file()
    from transformers import AutoModelForCausalLM

    m0 = AutoModelForCausalLM.from_pretrained(suite / "step0")
    m3 = AutoModelForCausalLM.from_pretrained(suite / "step3")
    assert m0.config.model_type == "gpt_neox" and m0.config.num_hidden_layers == 1
    assert any((a - b).abs().max() > 0 for a, b in zip(m0.parameters(), m3.parameters(), strict=True))
    out = tmp_path / "cmp"
    assert main(["compare-pretrained", "--model", str(suite), "--revisions", "local", "--text", str(tiny_text),
                 "--seq-len", "16", "--top-k", "8", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                 "--no-plots"]) == 0
    assert [e["label"] for e in read_json(out / "index.json")["entries"]] == rec["checkpoints"]


# ------------------------------------------------------------------ issue 10


def _suite(tiny_text, out, *extra):
    return ["pretrain-small", "--text", str(tiny_text), "--out", str(out), "--layers", "1", "--d-model", "16",
            "--heads", "2", "--vocab-size", "60", "--seq-len", "16", "--batch-size", "4", *extra]


def test_suite_overwrite_policy_and_stale_members(tiny_text, tmp_path, capsys):
    """pretrain-small --out EXISTING with fewer steps (issue 10 class 5): refused without --force; with --force
    the old suite's later checkpoints are removed, and compare-pretrained --revisions local reads only the
    members suite.json lists."""
    from helpers import one_line_error

    from leadingterms.pretrained.loading import resolve_refs

    suite = tmp_path / "suite"
    assert main(_suite(tiny_text, suite, "--steps", "4")) == 0
    capsys.readouterr()
    before = {str(p): p.read_bytes() for p in suite.rglob("*") if p.is_file() and not p.name.endswith(".lock")}
    one_line_error(capsys, *_suite(tiny_text, suite, "--steps", "2"), match="holds a suite made with other settings")
    assert {str(p): p.read_bytes() for p in suite.rglob("*") if p.is_file() and not p.name.endswith(".lock")} == before
    assert main(_suite(tiny_text, suite, "--steps", "2", "--force")) == 0
    assert sorted(p.name for p in suite.iterdir() if p.is_dir()) == ["step0", "step1", "step2"]
    # a stale member planted by hand is never read
    (suite / "step4").mkdir()
    assert [r.revision for r in resolve_refs([str(suite)], revisions_spec="local")] == ["step0", "step1", "step2"]
    (suite / "step4").rmdir()
    import shutil

    shutil.rmtree(suite / "step2")
    with pytest.raises(LeadingTermsError, match="lists step2, which is missing"):
        resolve_refs([str(suite)], revisions_spec="local")


@pytest.mark.parametrize(("args", "match"), [
    (["--vocab-size", "5"], "--vocab-size 5 is smaller than the"),
    (["--lr", "nan"], "--lr must be a finite number"),
    (["--steps", "0"], "--steps"),
])
def test_suite_bad_settings_make_nothing(tiny_text, tmp_path, capsys, args, match):
    from helpers import one_line_error

    one_line_error(capsys, *_suite(tiny_text, tmp_path / "s", "--steps", "2"), *args, match=match)
    assert not (tmp_path / "s").exists()


def test_suite_json_schema(tiny_text, tmp_path):
    from leadingterms.pretrained.suite import suite_members

    (tmp_path / "suite.json").write_text('{"config": {}, "checkpoints": "step0"}')
    with pytest.raises(LeadingTermsError, match="suite.json is corrupt: field 'checkpoints' must be a non-empty list"):
        suite_members(tmp_path)


def test_statistics_cache_replaces_its_own_store_of_other_inputs(tiny_neox, tiny_text, tmp_path):
    """The comparison cache's token store is the cache's own: when its inputs changed (e.g. the model folder
    was rewritten with the same tokenizer), it is rebuilt rather than refused by the overwrite policy."""
    import json

    from leadingterms.corpus.sources import SourceConfig
    from leadingterms.pretrained.stats import _build_store

    src = SourceConfig(text=str(tiny_text))
    store = _build_store(tiny_neox, src, 8, tmp_path / "store")
    meta = json.loads((tmp_path / "store" / "corpus.json").read_text())
    meta["fingerprint"] = "0" * 16
    (tmp_path / "store" / "corpus.json").write_text(json.dumps(meta))
    assert _build_store(tiny_neox, src, 8, tmp_path / "store").content_hash == store.content_hash


def test_a_diverging_suite_stops_in_one_line_and_saves_no_nan_model(tiny_text, tmp_path, capsys):
    from helpers import one_line_error
    from safetensors.torch import load_file

    suite = tmp_path / "s"
    line = one_line_error(capsys, *_suite(tiny_text, suite, "--steps", "4", "--lr", "1e9"))
    assert re.search(r"training diverged: non-finite (loss \(nan\)|weights) at step \d; lower --lr \(1e\+09\)", line)
    assert not (suite / "suite.json").exists()
    for f in suite.glob("step*/model.safetensors"):
        assert all(t.isfinite().all() for t in load_file(f).values()), f
