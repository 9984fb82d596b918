"""save_basis / load_basis, derived products after a round trip, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from leadingterms.basis import BASIS_TENSORS, EXTRA_TENSORS, Basis, compute_basis, load_basis, save_basis
from leadingterms.errors import LeadingTermsError


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.fixture
def basis() -> Basis:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 9, size=(12, 11))
    return compute_basis(tokens, 9, vocab=[f"t{i}" for i in range(9)], progress=False)


def test_round_trip_is_exact_and_records_metadata(tmp_path, basis):
    save_basis(tmp_path, basis, {"corpus_hash": "abc123"})
    assert (tmp_path / "basis.safetensors").is_file()
    meta = json.loads((tmp_path / "basis.json").read_text())
    assert meta["tensors"] == list(BASIS_TENSORS)
    assert (meta["N"], meta["T"], meta["V"], meta["corpus_hash"]) == (12, 10, 9, "abc123")
    for key in ("dtype", "seconds", "peak_memory_bytes", "top_k", "token_ids", "vocab"):
        assert key in meta
    loaded = load_basis(tmp_path, expected_hash="abc123")
    for name in BASIS_TENSORS:
        assert torch.equal(getattr(loaded, name), getattr(basis, name)), name
    assert (loaded.N, loaded.T, loaded.V, loaded.vocab) == (basis.N, basis.T, basis.V, basis.vocab)
    assert loaded.meta["corpus_hash"] == "abc123"


def test_derived_products_after_load_use_recovered_counts(tmp_path, basis):
    save_basis(tmp_path, basis)
    loaded = load_basis(tmp_path)
    assert loaded._counts() is not None  # integer bigram counts recovered from B_bar, Pi
    B, Phi = basis.B_bar, basis.Phi_bar
    assert rel(loaded.M(), B.T @ B @ Phi) <= 1e-12
    assert rel(loaded.value_direction(), Phi.T @ B.T) <= 1e-12
    assert rel(loaded.G_bar(), Phi.T @ B.T @ B) <= 1e-12
    assert rel(loaded.interchange_next(), B.T @ B) <= 1e-12
    assert rel(loaded.interchange_prev(), B @ B.T) <= 1e-12


def test_derived_products_of_a_non_count_basis_fall_back_to_dense():
    rng = np.random.default_rng(1)
    V = 5
    B, Phi = (torch.from_numpy(rng.standard_normal((V, V))) for _ in range(2))
    b = Basis(B_bar=B, Phi_bar=Phi, Q_bar=B, Delta=torch.zeros(3, dtype=torch.float64),
              Pi=torch.full((V,), 0.2, dtype=torch.float64), A_bar=B, N=2, T=3, V=V)
    assert b._counts() is None
    assert rel(b.M(), B.T @ B @ Phi) <= 1e-12
    assert rel(b.interchange_prev(), B @ B.T) <= 1e-12


def test_extras_are_saved_and_M_is_taken_from_G_bar(tmp_path, basis):
    save_basis(tmp_path, basis, extras=True)
    meta = json.loads((tmp_path / "basis.json").read_text())
    assert meta["tensors"] == list(BASIS_TENSORS) + list(EXTRA_TENSORS)
    from leadingterms.persist import load_tensors

    tensors, _ = load_tensors(tmp_path / "basis.safetensors")
    B, Phi = basis.B_bar, basis.Phi_bar
    assert rel(tensors["interchange_next"], B.T @ B) <= 1e-12
    assert rel(tensors["interchange_prev"], B @ B.T) <= 1e-12
    assert rel(tensors["G_bar"], Phi.T @ B.T @ B) <= 1e-12
    assert rel(load_basis(tmp_path).M(), B.T @ B @ Phi) <= 1e-12


def one_line_error(fn, match: str) -> None:
    with pytest.raises(LeadingTermsError, match=match) as e:
        fn()
    assert "\n" not in str(e.value)


def test_load_errors_are_one_line(tmp_path, basis):
    one_line_error(lambda: load_basis(tmp_path / "missing"), "basis not found")
    save_basis(tmp_path, basis, {"corpus_hash": "abc123"})
    one_line_error(lambda: load_basis(tmp_path, expected_hash="other"), "computed from corpus abc123")
    meta_path, tensor_path = tmp_path / "basis.json", tmp_path / "basis.safetensors"
    good_meta, good_tensors = meta_path.read_text(), tensor_path.read_bytes()

    meta_path.write_text("{not json")
    one_line_error(lambda: load_basis(tmp_path), "corrupt")
    meta = json.loads(good_meta)
    meta["N"] = 13
    meta_path.write_text(json.dumps(meta))
    one_line_error(lambda: load_basis(tmp_path), "inconsistent")
    meta_path.write_text(good_meta)

    tensor_path.write_bytes(b"\x00garbage" * 10)
    one_line_error(lambda: load_basis(tmp_path), "corrupt")
    tensor_path.unlink()
    one_line_error(lambda: load_basis(tmp_path), "not found")
    tensor_path.write_bytes(good_tensors)

    meta_path.unlink()
    one_line_error(lambda: load_basis(tmp_path), "not found")
    meta_path.write_text(good_meta)
    assert load_basis(tmp_path).V == 9


def test_load_refuses_wrong_shapes(tmp_path, basis):
    from leadingterms.persist import save_tensors

    save_basis(tmp_path, basis)
    tensors = {n: getattr(basis, n) for n in BASIS_TENSORS}
    tensors["Q_bar"] = tensors["Q_bar"][:, :4]
    save_tensors(tmp_path / "basis.safetensors", tensors, {"N": 12, "T": 10, "V": 9, "corpus_hash": None})
    one_line_error(lambda: load_basis(tmp_path), "Q_bar has shape")
