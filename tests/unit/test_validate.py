"""leadingterms.validate helpers."""

from __future__ import annotations

import pytest
import torch

from leadingterms.validate import all_finite


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_all_finite_finds_nan_and_inf_anywhere(dtype):
    t = torch.randn(1000, dtype=dtype)
    assert all_finite(t)
    for bad in (float("nan"), float("inf"), float("-inf")):
        u = t.clone()
        u[737] = bad
        assert not all_finite(u), bad


def test_finite_entries_whose_sum_overflows_are_finite():
    big = torch.full((4,), 1e308, dtype=torch.float64)
    assert not bool(big.sum().isfinite())
    assert all_finite(big)


def test_integer_and_empty_tensors_are_finite():
    assert all_finite(torch.arange(5))
    assert all_finite(torch.zeros(0))
