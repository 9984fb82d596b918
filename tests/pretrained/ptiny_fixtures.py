"""Tiny models and texts saved locally, as session fixtures: shared by tests/pretrained (via its conftest)
and tests/cli/test_compare_pretrained_cli.py (by import)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ptiny import make_text, save_model


@pytest.fixture(scope="session")
def tiny_text(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("text") / "corpus.txt"
    p.write_text(make_text(), encoding="utf-8")
    return p


@pytest.fixture(scope="session")
def tiny_neox(tmp_path_factory) -> Path:
    return save_model("neox", tmp_path_factory.mktemp("neox") / "tiny-neox")


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return save_model("gpt2", tmp_path_factory.mktemp("gpt2") / "tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return save_model("llama", tmp_path_factory.mktemp("llama") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return save_model("bert", tmp_path_factory.mktemp("bert") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_steps(tmp_path_factory) -> Path:
    """A local checkpoint suite: DIR/step0, DIR/step1, DIR/step4 (different random weights)."""
    root = tmp_path_factory.mktemp("suite") / "suite"
    for i, s in enumerate((0, 1, 4)):
        save_model("neox", root / f"step{s}", seed=10 + i)
    return root
