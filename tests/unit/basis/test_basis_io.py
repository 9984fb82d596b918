"""save_basis / load_basis, derived products after a round trip, and one-line errors."""

from __future__ import annotations

import json
import re

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
    one_line_error(lambda: load_basis(tmp_path), "changed after it was written")
    meta = json.loads(good_meta)
    del meta["files"]  # a basis without file records (older) is parsed and its header checked
    meta_path.write_text(json.dumps(meta))
    one_line_error(lambda: load_basis(tmp_path), "corrupt")
    meta_path.write_text(good_meta)
    tensor_path.unlink()
    one_line_error(lambda: load_basis(tmp_path), "basis.safetensors is missing")
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
    meta = json.loads((tmp_path / "basis.json").read_text())
    del meta["files"]  # the shape check is what catches it when there is no file record
    (tmp_path / "basis.json").write_text(json.dumps(meta))
    one_line_error(lambda: load_basis(tmp_path), "Q_bar has shape")


# ------------------------------------------------------------------ issue 10: provenance, schema, finite


def test_basis_records_its_tensor_file_and_hash(tmp_path, basis):
    save_basis(tmp_path, basis, {"corpus_hash": "abc"})
    meta = json.loads((tmp_path / "basis.json").read_text())
    assert meta["basis_hash"] == meta["files"]["basis.safetensors"]["blake2b"]
    assert load_basis(tmp_path).meta["basis_hash"] == meta["basis_hash"]
    assert load_basis(tmp_path, mmap=True).meta["basis_hash"] == meta["basis_hash"]


def _nan_basis(tmp_path, basis, keep_record):
    from leadingterms.persist import save_tensors

    save_basis(tmp_path, basis)
    tensors = {n: getattr(basis, n).clone() for n in BASIS_TENSORS}
    tensors["B_bar"][1, 2] = float("nan")
    tensors["Pi"][0] = float("inf")
    from leadingterms.persist import load_tensors

    _, header = load_tensors(tmp_path / "basis.safetensors")
    save_tensors(tmp_path / "basis.safetensors", tensors, header)
    if not keep_record:
        meta = json.loads((tmp_path / "basis.json").read_text())
        del meta["files"]
        (tmp_path / "basis.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("mmap", [False, True])
def test_nan_basis_is_refused(tmp_path, basis, mmap):
    """NaN tensors (issue 10 class 6): a basis holding NaN/inf is refused on load, with or without records."""
    _nan_basis(tmp_path / "a", basis, keep_record=True)
    one_line_error(lambda: load_basis(tmp_path / "a", mmap=mmap), "changed after it was written")
    _nan_basis(tmp_path / "b", basis, keep_record=False)
    one_line_error(lambda: load_basis(tmp_path / "b", mmap=mmap), "B_bar holds 1 NaN or infinite values")


def test_nan_basis_is_never_saved(tmp_path, basis):
    import dataclasses

    bad = dataclasses.replace(basis, Delta=basis.Delta.clone().fill_(float("nan")))
    one_line_error(lambda: save_basis(tmp_path, bad), "Delta holds")
    assert not (tmp_path / "basis.json").exists()


@pytest.mark.parametrize(("field", "value", "words"), [
    ("V", "9", "field 'V' must be an integer >= 1"),
    ("N", None, "field 'N' is missing"),
    ("vocab", "abcdefghi", "field 'vocab' must be a list of strings"),
    ("vocab", ["x"] * 3, "field 'vocab' has 3 tokens, not V=9"),
    ("corpus_hash", 5, "field 'corpus_hash' must be a string"),
])
def test_basis_json_schema(tmp_path, basis, field, value, words):
    """Tampered basis.json (issue 10 class 7): one line naming the file and the field."""
    save_basis(tmp_path, basis)
    meta = json.loads((tmp_path / "basis.json").read_text())
    meta[field] = value
    (tmp_path / "basis.json").write_text(json.dumps(meta))
    one_line_error(lambda: load_basis(tmp_path), re.escape(words))


def test_reversed_vocab_is_refused(tmp_path, basis):
    """A reversed vocab in basis.json would label every readout wrongly: the header's vocab hash catches it."""
    assert basis.vocab is not None
    save_basis(tmp_path, basis)
    meta = json.loads((tmp_path / "basis.json").read_text())
    meta["vocab"] = meta["vocab"][::-1]
    (tmp_path / "basis.json").write_text(json.dumps(meta))
    one_line_error(lambda: load_basis(tmp_path), "differs from the vocabulary the basis was computed with")
