"""Memory-mapped safetensors (persist.map_tensors) and load_basis(mmap=True): equal to the eager reads,
copy-on-write (the file never changes), one-line errors for corrupt files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference.naive import markov_corpus

from leadingterms.basis import compute_basis, load_basis, save_basis
from leadingterms.errors import LeadingTermsError
from leadingterms.persist import load_tensors, map_tensors, save_tensors


def test_map_tensors_equals_load_tensors_for_every_dtype(tmp_path):
    g = torch.Generator().manual_seed(0)
    t = {
        "f64": torch.randn(5, 7, generator=g, dtype=torch.float64),
        "f32": torch.randn(3, generator=g),
        "f16": torch.randn(2, 3, generator=g).half(),
        "bf16": torch.randn(4, generator=g).bfloat16(),
        "i64": torch.arange(6).reshape(2, 3),
        "u8": torch.arange(5, dtype=torch.uint8),
        "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "x.safetensors"
    save_tensors(path, t, {"a": [1, 2]})
    eager, meta_e = load_tensors(path)
    mapped, meta_m = map_tensors(path)
    assert meta_m == meta_e == {"a": [1, 2]}
    assert set(mapped) == set(t)
    for k, v in t.items():
        assert mapped[k].dtype == v.dtype and mapped[k].shape == v.shape, k
        assert torch.equal(mapped[k], v), k
        assert torch.equal(eager[k], v), k


def test_map_tensors_is_copy_on_write(tmp_path):
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"m": torch.ones(4, 4, dtype=torch.float64)})
    before = path.read_bytes()
    mapped, _ = map_tensors(path)
    mapped["m"][0, 0] = 5.0
    assert float(mapped["m"][0, 0]) == 5.0
    assert path.read_bytes() == before
    assert float(map_tensors(path)[0]["m"][0, 0]) == 1.0


@pytest.mark.parametrize("payload", [b"", b"\x00\x01junk", (10**9).to_bytes(8, "little") + b"{}",
                                     (8).to_bytes(8, "little") + b"not json"])
def test_map_tensors_corrupt_is_one_line(tmp_path, payload):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(payload)
    with pytest.raises(LeadingTermsError, match="corrupt") as e:
        map_tensors(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(LeadingTermsError, match="not found"):
        map_tensors(tmp_path / "none.safetensors")


def test_map_tensors_truncated_data_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    save_tensors(path, {"m": torch.ones(64, 64, dtype=torch.float64)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(LeadingTermsError, match="data offsets"):
        map_tensors(path)


def test_load_basis_mmap_equals_eager(tmp_path):
    tokens = markov_corpus(9, 6, 15, seed=2)
    basis = compute_basis(tokens, 9, vocab=[f"t{i}" for i in range(9)], progress=False)
    save_basis(tmp_path, basis, extras=True)
    eager, mapped = load_basis(tmp_path), load_basis(tmp_path, mmap=True)
    for name in ("B_bar", "Phi_bar", "Q_bar", "Delta", "Pi", "A_bar"):
        assert torch.equal(getattr(mapped, name), getattr(eager, name)), name
        assert isinstance(getattr(mapped, name).numpy(), np.ndarray)
    assert mapped.vocab == eager.vocab and (mapped.N, mapped.T, mapped.V) == (eager.N, eager.T, eager.V)
    assert torch.allclose(mapped.G_bar(), eager.G_bar(), rtol=1e-12, atol=0)
