"""Revisions, local checkpoint folders, the offline HF cache and refusals."""

from __future__ import annotations

import shutil

import pytest

from leadingterms.errors import LeadingTermsError
from leadingterms.pretrained.loading import (
    expand_pythia,
    load_config,
    load_model,
    pythia_schedule,
    resolve_refs,
    snapshot_folder,
)


def test_pythia_schedule():
    steps = pythia_schedule()
    expected = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512] + [1000 * k for k in range(1, 144)]
    assert steps == expected
    assert len(steps) == 1 + 10 + 143 == 154
    assert len(set(steps)) == 154
    assert expand_pythia("pythia")[:3] == ["step0", "step1", "step2"] and expand_pythia("pythia")[-1] == "step143000"
    assert expand_pythia("pythia:0-512") == [f"step{s}" for s in expected[:11]]
    assert expand_pythia("pythia:step1000-step3000") == ["step1000", "step2000", "step3000"]
    assert expand_pythia("pythia:3-5") == ["step4"]
    for bad in ("pythia:5", "pythia:a-b", "pythia:600-900"):
        with pytest.raises(LeadingTermsError):
            expand_pythia(bad)


def test_local_checkpoint_folders(tiny_steps):
    refs = resolve_refs([str(tiny_steps)], revisions_spec="local")
    assert [r.label for r in refs] == ["step0", "step1", "step4"]  # step order, not lexical
    assert [r.path for r in refs] == [tiny_steps / "step0", tiny_steps / "step1", tiny_steps / "step4"]
    refs = resolve_refs([str(tiny_steps)], revisions=["step4", "step0"])
    assert [r.label for r in refs] == ["step4", "step0"]
    with pytest.raises(LeadingTermsError, match="revision 'step2' not found"):
        resolve_refs([str(tiny_steps)], revisions=["step2"])
    with pytest.raises(LeadingTermsError, match="step2"):  # the Pythia range needs every folder
        resolve_refs([str(tiny_steps)], revisions_spec="pythia:0-2")
    # several folders as several models: labels are the folder names
    refs = resolve_refs([str(tiny_steps / "step0"), str(tiny_steps / "step4")])
    assert [r.label for r in refs] == ["step0", "step4"] and all(r.revision is None for r in refs)
    with pytest.raises(LeadingTermsError, match="exclusive"):
        resolve_refs([str(tiny_steps)], revisions=["step0"], revisions_spec="local")
    with pytest.raises(LeadingTermsError, match="unknown --revisions"):
        resolve_refs([str(tiny_steps)], revisions_spec="every")
    # the folder of checkpoints given as one model: the error says how to compare them
    with pytest.raises(LeadingTermsError, match=r"holds checkpoint folders \(stepN\): pass --revisions local"):
        load_config(tiny_steps)


def test_local_model_records_fingerprint(tiny_steps):
    a = load_model(resolve_refs([str(tiny_steps / "step0")])[0])
    b = load_model(resolve_refs([str(tiny_steps / "step1")])[0])
    assert a.commit is None and a.info["source"] == "local"
    assert a.info["weights_fingerprint"] != b.info["weights_fingerprint"]
    assert a.info["model_type"] == "gpt_neox" and a.info["parallel_residual"] is True


def fake_hub_cache(root, repo, folder, branches):
    """The HF cache layout: models--ORG--NAME/{refs/<branch>, snapshots/<commit>/...}."""
    base = root / ("models--" + repo.replace("/", "--"))
    commits = {}
    for i, b in enumerate(branches):
        commit = f"{i + 1:040x}"
        shutil.copytree(folder, base / "snapshots" / commit)
        (base / "refs").mkdir(parents=True, exist_ok=True)
        (base / "refs" / b).write_text(commit)
        commits[b] = commit
    return commits


def test_offline_hub_revision_from_cache(tmp_path, tiny_neox, monkeypatch):
    commits = fake_hub_cache(tmp_path / "hub", "org/tiny", tiny_neox, ["step0", "step1"])
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert snapshot_folder("org/tiny", "step1", offline=True).name == commits["step1"]
    refs = resolve_refs(["org/tiny"], revisions=["step1"])
    assert refs[0].path is None and refs[0].label == "step1"
    lm = load_model(refs[0])
    assert lm.commit == commits["step1"] and lm.info["source"] == "hub"
    assert lm.folder.name == commits["step1"]
    with pytest.raises(LeadingTermsError, match="revision 'step2' of model 'org/tiny' not found in the local"):
        load_model(resolve_refs(["org/tiny"], revisions=["step2"])[0])
    with pytest.raises(LeadingTermsError, match="model 'org/other' not found"):
        load_model(resolve_refs(["org/other"])[0])


def test_refuses_non_causal_and_unsupported(tiny_bert, tmp_path):
    with pytest.raises(LeadingTermsError, match="not a causal language model"):
        load_config(tiny_bert)
    with pytest.raises(LeadingTermsError, match="model folder not found"):
        resolve_refs([str(tmp_path / "missing")])


def test_refuses_a_folder_without_tokenizer_and_nan_weights(tiny_steps, tmp_path):
    """transformers would build an empty 2-token tokenizer for the first, and compare NaN for the second."""
    import torch
    from safetensors.torch import load_file, save_file

    bare = tmp_path / "bare"
    shutil.copytree(tiny_steps / "step1", bare)
    for f in bare.iterdir():
        if f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")):
            f.unlink()
    with pytest.raises(LeadingTermsError, match=r"model folder .*bare has no tokenizer \(none of tokenizer.json"):
        load_model(resolve_refs([str(bare)])[0])
    nan = tmp_path / "nan"
    shutil.copytree(tiny_steps / "step1", nan)
    weights = load_file(nan / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, nan / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(LeadingTermsError, match=r"the model in .*nan has NaN or inf weights \(.*\): a diverged"):
        load_model(resolve_refs([str(nan)])[0])
