"""Fixtures of the pretrained tests (tiny models saved locally; HF offline via tests/conftest.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ptiny_fixtures import tiny_bert, tiny_gpt2, tiny_llama, tiny_neox, tiny_steps, tiny_text  # noqa: E402, F401
