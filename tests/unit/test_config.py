"""Typed configs and their checks (leadingterms.config, leadingterms.validate) and the CLI generated from them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from leadingterms.cli import _Parser, add_config_arguments, given_options
from leadingterms.config import check_config, option
from leadingterms.errors import LeadingTermsError
from leadingterms.validate import (
    finite_float,
    fraction,
    nonnegative_int,
    parse_dtype,
    parse_init,
    positive_float,
    positive_int,
    resolve_device,
    token_rows,
)


def test_scalar_checks():
    assert positive_int(3, "batch_size") == 3 and positive_int(np.int64(2), "x") == 2
    for bad in (0, -1, 2.5, True, "3", None):
        with pytest.raises(LeadingTermsError, match="--batch-size must be a positive integer"):
            positive_int(bad, "batch_size")
    assert nonnegative_int(0, "seed") == 0
    with pytest.raises(LeadingTermsError, match="--seed must be an integer >= 0, got -1"):
        nonnegative_int(-1, "seed")
    for bad in (math.nan, math.inf, "x", True, 1e400):
        with pytest.raises(LeadingTermsError, match="--lr must be a finite number"):
            positive_float(bad, "lr")
    with pytest.raises(LeadingTermsError, match="> 0"):
        positive_float(0.0, "lr")
    assert finite_float("2.5", "x") == 2.5 and fraction(0.0, "f") == 0.0
    with pytest.raises(LeadingTermsError, match=r"in \[0, 1\)"):
        fraction(1.0, "val_fraction")


def test_init_dtype_device_tokens():
    assert parse_init("zero") == ("zero", 0.0) and parse_init("normal:0.02") == ("normal", 0.02)
    for bad in ("normal:0", "normal:-1", "normal:x", "uniform:1", "normal:inf"):
        with pytest.raises(LeadingTermsError, match="bad --init"):
            parse_init(bad)
    import torch

    assert parse_dtype("float64") is torch.float64 and parse_dtype("torch.float32") is torch.float32
    with pytest.raises(LeadingTermsError, match="dtype"):
        parse_dtype("float16")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(LeadingTermsError, match="cpu, cuda"):
        resolve_device("tpu")
    assert token_rows([[1, 2], [3, 4]], V=5).shape == (2, 2)
    for bad, match in (([[1.0, 2.0]], "integer"), ([1, 2], "shape"), ([[1]], "shape"), ([[1, 9]], r"\[0, 5\)")):
        with pytest.raises(LeadingTermsError, match=match):
            token_rows(bad, V=5)


@dataclass(kw_only=True)
class _Cfg:
    name: str = option(help="a required name")
    n: int = option(3, help="a count", check=positive_int)
    mode: str = option("a", help="a mode", choices=("a", "b"))
    tags: list[str] | None = option(None, help="comma-separated tags", sep=",")
    x: int | None = option(None, help="x", exclusive="one")
    y: int | None = option(None, help="y", exclusive="one")
    plots: bool = option(True, help="no plots", flag="--no-plots", negate=True)
    hidden: int = option(0, help="not on the command line", cli=False)


def parse(*argv: str) -> dict:
    p = _Parser(prog="t")
    add_config_arguments(p, _Cfg)
    return given_options(p.parse_args(list(argv)))


def test_generated_parser_and_checks():
    assert parse("--name", "k") == {"name": "k"}  # defaults stay with the dataclass
    got = parse("--name", "k", "--n", "5", "--mode", "b", "--tags", "u, v,", "--no-plots")
    assert got == {"name": "k", "n": 5, "mode": "b", "tags": ["u", "v"], "plots": False}
    cfg = _Cfg(**got)
    check_config(cfg)
    with pytest.raises(SystemExit):
        parse("--n", "2")  # --name is required
    with pytest.raises(SystemExit):
        parse("--name", "k", "--x", "1", "--y", "2")  # mutually exclusive
    with pytest.raises(SystemExit):
        parse("--name", "k", "--hidden", "1")  # API-only field
    with pytest.raises(LeadingTermsError, match="--n must be a positive integer"):
        check_config(_Cfg(name="k", n=0))
    with pytest.raises(LeadingTermsError, match="--mode must be one of a, b"):
        check_config(_Cfg(name="k", mode="c"))
    with pytest.raises(LeadingTermsError, match="--x and --y exclude each other"):
        check_config(_Cfg(name="k", x=1, y=2))
