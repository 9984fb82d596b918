"""leadingterms.metrics: the one definition of cosine, relative error and overlap@k (docs/theory.md §6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from leadingterms.errors import LeadingTermsError
from leadingterms.metrics import compare, frobenius_cosine, relative_error


def test_cosine_and_relative_error_against_numpy():
    g = np.random.default_rng(0)
    for shape in [(5,), (4, 6), (3, 3)]:
        a, b = g.normal(size=shape), g.normal(size=shape)
        cos = (a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b))
        rel = np.linalg.norm(a - b) / np.linalg.norm(a)
        A, B = torch.from_numpy(a).float(), torch.from_numpy(b)  # mixed dtypes are compared in float64
        assert frobenius_cosine(A, B) == pytest.approx(cos, rel=1e-6)
        assert relative_error(torch.from_numpy(a), B) == pytest.approx(rel, rel=1e-14)


def test_zero_convention():
    z, x = torch.zeros(3, 3), torch.ones(3, 3)
    assert frobenius_cosine(z, x) == 0.0 and frobenius_cosine(x, z) == 0.0 and frobenius_cosine(z, z) == 0.0
    assert relative_error(z, x) is None  # undefined for a zero learned weight
    assert relative_error(x, z) == 1.0
    got = compare({"a": z, "b": x}, {"a": x, "b": z, "c": x})
    assert got == {"b": {"cos": 0.0, "rel": 1.0}}  # a zero learned weight is omitted; c is not learned
    with pytest.raises(LeadingTermsError, match="different shapes"):
        frobenius_cosine(torch.ones(2), torch.ones(3))


def test_compare_many_equals_compare_per_set_with_row_builders():
    """Blocks of rows (several per matrix), lazy row builders and 1-D weights give compare()'s numbers."""
    from leadingterms import metrics

    g = torch.Generator().manual_seed(0)
    a = {"M": torch.randn(700, 3000, generator=g, dtype=torch.float32), "p": torch.randn(9, generator=g)}
    D = torch.randn(700, 3000, generator=g, dtype=torch.float64)
    sets = {"dense": {"M": 0.5 * D, "p": torch.randn(9, generator=g)},
            "rows": {"M": lambda i, j: 0.5 * D[i:j]}}
    got = metrics.compare_many(a, sets)
    assert 700 * 3000 > metrics.BLOCK_ELEMENTS  # several blocks
    want = compare(a, sets["dense"])
    for name, m in want.items():
        assert got["dense"][name]["rel"] == pytest.approx(relative_error(a[name], sets["dense"][name]), rel=1e-13)
        assert got["dense"][name]["cos"] == pytest.approx(frobenius_cosine(a[name], sets["dense"][name]), rel=1e-12)
        assert m == got["dense"][name]
    assert got["rows"]["M"] == pytest.approx(got["dense"]["M"], rel=1e-15)
    assert "p" not in got["rows"]
