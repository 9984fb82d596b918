"""Issue 10, the run side: provenance (run id, corpus hash) verified by every consumer, one writer per run,
validate-then-mutate for ``train --resume``, metrics.jsonl integrity, finite checkpoints, config.json schema."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from helpers import one_line_error, run_cli

from leadingterms.errors import LeadingTermsError


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture
def run(run_factory, tmp_path) -> Path:
    """A copy of a 4-step run (checkpoints 0, 1, 4; logged every step) with an intervention."""
    src = run_factory("prov", steps=4, log_every=1, intervene_sequences=6)
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg["config"]["out"] = str(dst)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def _ck(run: Path, step: int, ext: str) -> Path:
    return run / "checkpoints" / f"step_{step:06d}.{ext}"


def test_run_id_recorded_in_config_and_every_checkpoint(run):
    info = json.loads((run / "config.json").read_text())
    assert isinstance(info["run_id"], str) and len(info["run_id"]) == 32
    for j in (run / "checkpoints").glob("*.json"):
        meta = json.loads(j.read_text())
        assert meta["run_id"] == info["run_id"] and meta["corpus_hash"] == info["corpus_hash"]
    prov = json.loads((run / "intervention.json").read_text())["provenance"]
    assert prov["run_id"] == info["run_id"] and prov["step"] == 4 and set(prov["checkpoint"]) >= {"blake2b"}


# the five refused resumes (corrupt, swapped, truncated latest checkpoint; bad checkpoint JSON; a pickle)
def _corrupt(r: Path) -> None:
    _ck(r, 4, "safetensors").write_bytes(b"\x00garbage" * 40)


def _swapped(r: Path) -> None:
    shutil.copy2(_ck(r, 1, "safetensors"), _ck(r, 4, "safetensors"))


def _truncated(r: Path) -> None:
    b = _ck(r, 4, "safetensors").read_bytes()
    _ck(r, 4, "safetensors").write_bytes(b[: len(b) // 2])


def _bad_json(r: Path) -> None:
    _ck(r, 4, "json").write_text('{"step": 4,')


def _pickle(r: Path) -> None:
    _ck(r, 4, "safetensors").write_bytes(pickle.dumps({"model.W_O": torch.zeros(2)}))


@pytest.mark.parametrize("fault", [_corrupt, _swapped, _truncated, _bad_json, _pickle])
def test_refused_resume_leaves_every_file_byte_identical(run, capsys, fault):
    fault(run)
    before = _hashes(run)
    one_line_error(capsys, "train", "--out", run, "--resume", "--steps", "8")
    assert _hashes(run) == before  # summary.json kept, config.json not rewritten


def test_nan_checkpoint_refused_by_resume_and_consumers(run, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    p = _ck(run, 4, "safetensors")
    with safe_open(str(p), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    tensors["model.W_O"][0, 0] = float("nan")
    save_file(tensors, str(p), metadata=meta)
    before = _hashes(run)
    one_line_error(capsys, "train", "--out", run, "--resume", "--steps", "8", match="NaN")
    one_line_error(capsys, "report", "--run", run, "--out", run.parent / "r.html", match="NaN")
    one_line_error(capsys, "associations", "--run", run, "--step", "4", "the", match="NaN")
    one_line_error(capsys, "explore", "--run", run, "--out", run.parent / "p.html", match="NaN")
    assert _hashes(run) == before


def test_checkpoint_of_another_run_refused(run, run_factory, capsys):
    other = run_factory("prov_other", steps=4, log_every=1)  # same config, same corpus: only the run id differs
    for ext in ("safetensors", "json"):
        shutil.copy2(_ck(other, 4, ext), _ck(run, 4, ext))
    one_line_error(capsys, "intervene", "--run", run, "--max-sequences", "4", match="another run")
    one_line_error(capsys, "associations", "--run", run, "--step", "4", "the", match="another run")
    one_line_error(capsys, "train", "--out", run, "--resume", "--steps", "8", match="another run")


def test_rebuilt_store_refused_by_consumers_naming_both_hashes(run, capsys):
    from leadingterms.corpus.pipeline import CorpusConfig, run_corpus

    info = json.loads((run / "config.json").read_text())
    corpus = Path(info["config"]["corpus"])
    copy = run.parent / "corpus"
    shutil.copytree(corpus, copy)
    info["config"]["corpus"] = str(copy)
    (run / "config.json").write_text(json.dumps(info))
    run_corpus(CorpusConfig(synthetic_docs=20, synthetic_seed=5, seq_len=12, out=str(copy), force=True))
    new = json.loads((copy / "corpus.json").read_text())["content_hash"]
    assert new != info["corpus_hash"]
    for argv in (["intervene", "--run", run], ["report", "--run", run, "--out", run.parent / "r.html"],
                 ["inspect", "--run", run, "--text", "the", "--no-plots", "--out", run.parent / "lens"]):
        line = one_line_error(capsys, *argv)
        assert new in line and info["corpus_hash"] in line, line


def test_basis_of_another_corpus_refused_by_the_readouts(run, capsys):
    """associations --run / explore --run read the run's own basis: recomputed from another corpus, it is
    refused naming both corpus hashes."""
    from leadingterms.basis import StatsConfig, run_stats
    from leadingterms.corpus.pipeline import CorpusConfig, run_corpus

    info = json.loads((run / "config.json").read_text())
    stats = run.parent / "stats"
    shutil.copytree(Path(info["config"]["stats"]), stats)
    info["config"]["stats"] = str(stats)
    (run / "config.json").write_text(json.dumps(info))
    other = run_corpus(CorpusConfig(synthetic_docs=20, synthetic_seed=5, seq_len=12,
                                    out=str(run.parent / "other"))).store
    run_stats(StatsConfig(corpus=str(run.parent / "other"), out=str(stats), force=True, progress=False))
    for argv in (["associations", "--run", run, "the"],
                 ["explore", "--run", run, "--out", run.parent / "page.html"]):
        line = one_line_error(capsys, *argv)
        assert other.content_hash in line and info["corpus_hash"] in line, line


def test_second_writer_gets_one_line_naming_the_holder(run, capsys):
    from leadingterms.locks import output_lock

    with output_lock(run, what="run"):
        line = one_line_error(capsys, "train", "--out", run, "--resume", "--steps", "8")
    assert "being written by process" in line


def test_metrics_deleted_or_cut_is_detected(run, capsys):
    m = run / "metrics.jsonl"
    lines = m.read_text().splitlines()
    m.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # row of step 1 gone
    one_line_error(capsys, "report", "--run", run, "--out", run.parent / "r.html", match="lacks the rows")
    m.unlink()
    one_line_error(capsys, "train", "--out", run, "--resume", "--steps", "8", match="lacks the rows")


def test_metrics_deleted_mid_run_stops_the_run_without_summary(tmp_path, run_factory):
    from leadingterms.training import TrainConfig, train

    base = run_factory("prov_live", steps=1)
    out = tmp_path / "live"

    def delete_at_3(step: int) -> None:
        if step == 3:
            (out / "metrics.jsonl").unlink()

    with pytest.raises(LeadingTermsError, match="deleted or changed"):
        train(TrainConfig(corpus=str(base.parent / "corpus"), out=str(out), layers=1, lr=0.5, batch_size=10,
                          steps=8, log_every=1, track=(), progress=False), on_step=delete_at_3)
    assert not (out / "summary.json").exists() and not (out / "metrics.jsonl").exists()


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: d.update(config={}), "config"),
    (lambda d: d.update(config=5), "config"),
    (lambda d: d["config"].update(lr="fast"), "lr"),
    (lambda d: d.pop("corpus_hash"), "corpus_hash"),
])
def test_config_json_schema(run, capsys, edit, match):
    d = json.loads((run / "config.json").read_text())
    edit(d)
    (run / "config.json").write_text(json.dumps(d))
    before = _hashes(run)
    one_line_error(capsys, "report", "--run", run, "--out", run.parent / "r.html", match=match)
    one_line_error(capsys, "train", "--out", run, "--resume", "--steps", "8", match=match)
    assert _hashes(run) == before


def test_metrics_row_schema(run, capsys):
    m = run / "metrics.jsonl"
    rows = [json.loads(x) for x in m.read_text().splitlines()]
    rows[1]["step"] = "one"
    m.write_text("".join(json.dumps(r) + "\n" for r in rows))
    one_line_error(capsys, "report", "--run", run, "--out", run.parent / "r.html", match="'step'")


def test_seed_negative_refused_before_anything_is_made(run, capsys, tmp_path):
    corpus = json.loads((run / "config.json").read_text())["config"]["corpus"]
    one_line_error(capsys, "train", "--corpus", corpus, "--layers", "1", "--lr", "0.5", "--batch-size", "4",
                   "--steps", "2", "--seed", "-1", "--out", tmp_path / "new", match="--seed")
    assert not (tmp_path / "new").exists()


def test_failed_fresh_train_leaves_no_folder(capsys, tmp_path):
    one_line_error(capsys, "train", "--corpus", tmp_path / "nope", "--layers", "1", "--lr", "0.5", "--batch-size",
                   "4", "--steps", "2", "--out", tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_resume_still_works_and_keeps_the_run_id(run, capsys):
    run_id = json.loads((run / "config.json").read_text())["run_id"]
    rc, _, err = run_cli(capsys, "train", "--out", run, "--resume", "--steps", "6")
    assert rc == 0, err
    assert json.loads((run / "config.json").read_text())["run_id"] == run_id
    assert json.loads(_ck(run, 6, "json").read_text())["run_id"] == run_id
