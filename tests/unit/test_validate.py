"""leadingterms.validate helpers."""

from __future__ import annotations

import pytest
import torch

from leadingterms.errors import LeadingTermsError
from leadingterms.validate import all_finite, nonnegative_int, positive_int


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


@pytest.mark.parametrize("check", [positive_int, nonnegative_int])
def test_counts_past_int64_are_refused_in_one_line(check):
    assert check(2**63 - 1, "max_documents") == 2**63 - 1
    with pytest.raises(LeadingTermsError, match=r"^--max-documents must be at most 2\^63 - 1, got 10{20}$"):
        check(10**20, "max_documents")


def test_an_empty_out_is_refused():
    from leadingterms.validate import out_file, out_folder

    with pytest.raises(LeadingTermsError, match="^--out must name a folder, got an empty string$"):
        out_folder("")
    with pytest.raises(LeadingTermsError, match=r"^--out must name a \.html file, got an empty string$"):
        out_file(" ", ".html")
