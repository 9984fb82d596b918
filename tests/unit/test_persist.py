import numpy as np
import pytest
import torch

from leadingterms.budget import check_memory
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import load_tensors, save_tensors, write_json


def test_tensors_round_trip(tmp_path):
    t = {"W_O": torch.randn(3, 3, dtype=torch.float64), "P": np.arange(4.0)}
    save_tensors(tmp_path / "x.safetensors", t, {"step": 3, "names": ["a"]})
    back, meta = load_tensors(tmp_path / "x.safetensors")
    assert torch.equal(back["W_O"], t["W_O"]) and back["P"].tolist() == [0, 1, 2, 3]
    assert meta == {"step": 3, "names": ["a"]}
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]  # no temp files left


def test_corrupt_and_missing(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x00\x01junk")
    with pytest.raises(LeadingTermsError, match="corrupt"):
        load_tensors(tmp_path / "bad.safetensors")
    with pytest.raises(LeadingTermsError, match="not found"):
        load_tensors(tmp_path / "none.safetensors")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "m.json"
    write_json(p, {"a": 1})
    with pytest.raises(TypeError):
        write_json(p, {"a": object()})
    assert p.read_text().strip().startswith("{") and '"a": 1' in p.read_text()
    assert len(list(tmp_path.iterdir())) == 1


def test_check_memory_refuses():
    with pytest.raises(LeadingTermsError, match="--top-k"):
        check_memory(1 << 60, "the V x V matrices", hint="use --top-k")
    check_memory(1024, "tiny")
