import json

import numpy as np
import pytest
import torch

from leadingterms.budget import check_memory
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import load_tensors, save_tensors, write_json
from leadingterms.provenance import file_digest


def test_tensors_round_trip(tmp_path):
    t = {"W_O": torch.randn(3, 3, dtype=torch.float64), "P": np.arange(4.0)}
    save_tensors(tmp_path / "x.safetensors", t, {"step": 3, "names": ["a"]})
    back, meta = load_tensors(tmp_path / "x.safetensors")
    assert torch.equal(back["W_O"], t["W_O"]) and back["P"].tolist() == [0, 1, 2, 3]
    assert meta == {"step": 3, "names": ["a"]}
    assert [p.name for p in tmp_path.iterdir()] == ["x.safetensors"]  # no temp files left


def _mixed_tensors(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "b": torch.randn(5, generator=g, dtype=torch.float64), "e": torch.zeros(0, dtype=torch.float64),
        "a": torch.randn(2, 3, generator=g), "c": torch.randint(-9, 9, (3,), generator=g, dtype=torch.int32),
        "I": torch.randint(0, 9, (2, 2), generator=g), "d": torch.randn(3, generator=g).to(torch.bfloat16),
        "h": torch.randn(1, 2, generator=g).to(torch.float16), "f": torch.tensor([True, False, True]),
        "u": torch.arange(7, dtype=torch.uint8), "s": torch.tensor(2.5, dtype=torch.float64),
        "k": torch.arange(12, dtype=torch.int16).reshape(3, 4), "i8": torch.tensor([-1, 2], dtype=torch.int8),
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_bytes_are_those_of_safetensors_save_file(tmp_path, seed):
    """Our writer (no copy, hashed while writing) against the reference writer of the safetensors package."""
    from safetensors.torch import save_file

    t = _mixed_tensors(seed)
    meta = {"N": 3, "vocab": ["é", "a b"], "nested": {"x": [1.5, None]}}
    digest = save_tensors(tmp_path / "ours.safetensors", t, meta, digest=True)
    save_file(t, str(tmp_path / "ref.safetensors"), metadata={"json": json.dumps(meta)})
    ours = (tmp_path / "ours.safetensors").read_bytes()
    assert ours == (tmp_path / "ref.safetensors").read_bytes()
    assert digest == file_digest(tmp_path / "ours.safetensors")
    back, m = load_tensors(tmp_path / "ours.safetensors")
    assert m == meta and set(back) == set(t)
    for name, x in t.items():
        assert back[name].dtype == x.dtype and torch.equal(back[name], x)


def test_writes_views_and_arrays(tmp_path):
    """Non-contiguous tensors and numpy arrays are written as their values; no digest unless asked."""
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    t = {"T": base.T, "col": base[:, 1], "np": np.asfortranarray(np.arange(6.0).reshape(2, 3))}
    assert save_tensors(tmp_path / "v.safetensors", t) is None
    back, _ = load_tensors(tmp_path / "v.safetensors")
    assert torch.equal(back["T"], base.T) and torch.equal(back["col"], base[:, 1])
    assert back["np"].tolist() == [[0, 1, 2], [3, 4, 5]]


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
