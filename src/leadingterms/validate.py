"""Validation of user input, one home for every rule: each check returns the clean value or raises a
one-line :class:`~leadingterms.errors.LeadingTermsError` naming the option (``--batch-size``).

Scalar checks take ``(value, name)`` with ``name`` a config field name (``batch_size``); they are
what config fields declare as ``check=`` (see :mod:`leadingterms.config`). The rest validates
dtypes, initialisations, devices, GD schedules and token arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from leadingterms.errors import LeadingTermsError

if TYPE_CHECKING:
    import torch

#: The floating dtypes the project computes in (name -> torch dtype name).
DTYPE_NAMES = ("float32", "float64")


def flag(name: str) -> str:
    """Config field name -> the CLI flag that sets it: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


#: The largest count, size or seed an option takes (a C ``int64``, what NumPy, torch and ``islice`` accept).
MAX_INT = 2**63 - 1


def positive_int(value: Any, name: str) -> int:
    """An integer >= 1 (and at most :data:`MAX_INT`)."""
    if not _is_int(value) or value < 1:
        raise LeadingTermsError(f"{flag(name)} must be a positive integer, got {value!r}")
    return _at_most_max(value, name)


def nonnegative_int(value: Any, name: str) -> int:
    """An integer >= 0 (and at most :data:`MAX_INT`)."""
    if not _is_int(value) or value < 0:
        raise LeadingTermsError(f"{flag(name)} must be an integer >= 0, got {value!r}")
    return _at_most_max(value, name)


def learned_step(value: Any, name: str) -> int:
    """A checkpoint step >= 1: step 0 is the initialisation, where nothing is learned nor predicted."""
    if _is_int(value) and value == 0:
        raise LeadingTermsError(f"{flag(name)} 0 is the initialisation (nothing learned yet); choose a later "
                                "checkpoint")
    return positive_int(value, name)


def _at_most_max(value: Any, name: str) -> int:
    if value > MAX_INT:
        raise LeadingTermsError(f"{flag(name)} must be at most 2^63 - 1, got {value!r}")
    return int(value)


def finite_float(value: Any, name: str) -> float:
    """Any finite real number."""
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):
        x = float("nan")
    if isinstance(value, bool) or not math.isfinite(x):
        raise LeadingTermsError(f"{flag(name)} must be a finite number, got {value!r}")
    return x


def positive_float(value: Any, name: str) -> float:
    """A finite number > 0."""
    x = finite_float(value, name)
    if x <= 0:
        raise LeadingTermsError(f"{flag(name)} must be a finite number > 0, got {value!r}")
    return x


def fraction(value: Any, name: str) -> float:
    """A number in [0, 1)."""
    x = finite_float(value, name)
    if not 0.0 <= x < 1.0:
        raise LeadingTermsError(f"{flag(name)} must be in [0, 1), got {value!r}")
    return x


def one_of(choices: tuple[str, ...]) -> Any:
    """A check accepting only the given strings."""
    def check(value: Any, name: str) -> str:
        if value not in choices:
            raise LeadingTermsError(f"{flag(name)} must be one of {', '.join(choices)}, got {value!r}")
        return str(value)

    return check


def dtype_name(value: Any, name: str = "dtype") -> str:
    """``"float32"`` or ``"float64"``."""
    return str(one_of(DTYPE_NAMES)(value, name))


def parse_dtype(name: str) -> torch.dtype:
    """``"float32"``/``"float64"`` (also ``"torch.float64"``) -> the torch dtype."""
    import torch

    key = str(name).removeprefix("torch.")
    if key not in DTYPE_NAMES:
        raise LeadingTermsError(f"dtype must be one of {', '.join(DTYPE_NAMES)}, got {name!r}")
    return {"float32": torch.float32, "float64": torch.float64}[key]


def dtype_to_name(dtype: torch.dtype) -> str:
    """torch dtype -> ``"float32"``/``"float64"``; one-line error for anything else."""
    key = str(dtype).removeprefix("torch.")
    if key not in DTYPE_NAMES:
        raise LeadingTermsError(f"unsupported dtype {dtype}; use float64 or float32")
    return key


def parse_init(init: Any, name: str = "init") -> tuple[str, float]:
    """``"zero"`` -> ("zero", 0.0); ``"normal:STD"`` with STD > 0 -> ("normal", STD). One rule everywhere."""
    if init == "zero":
        return "zero", 0.0
    if isinstance(init, str) and init.startswith("normal:"):
        try:
            std = float(init.split(":", 1)[1])
        except ValueError:
            std = float("nan")
        if math.isfinite(std) and std > 0:
            return "normal", std
    raise LeadingTermsError(f"bad {flag(name)} {init!r}: use zero or normal:STD with STD > 0 (e.g. normal:0.02)")


def init_spec(value: Any, name: str) -> str:
    """Field check form of :func:`parse_init`."""
    parse_init(value, name)
    return str(value)


def device_spec(value: Any, name: str = "device") -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (syntax only; :func:`resolve_device` checks availability)."""
    if not isinstance(value, str) or not (value in ("cpu", "cuda", "auto") or
                                          (value.startswith("cuda:") and value[5:].isdigit())):
        raise LeadingTermsError(f"{flag(name)} must be cpu, cuda, cuda:N or auto, got {value!r}")
    return value


def resolve_device(name: str | None) -> torch.device:
    """``None``/``"auto"`` -> cuda if available else cpu; refuse cuda where there is none."""
    import torch

    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device_spec(name)
    assert name is not None
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise LeadingTermsError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return torch.device(name)


def check_schedule(steps: Any, lr: Any, layers: Any) -> None:
    """One-line error unless steps >= 1, lr > 0 (finite) and layers >= 1."""
    positive_int(steps, "steps")
    positive_float(lr, "lr")
    positive_int(layers, "layers")


def _row_array(obj: Any) -> bool:
    """An array-like read by rows without loading it (e.g. a sharded token store): shape, dtype, slicing."""
    return hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "__getitem__") and hasattr(obj, "max")


def token_rows(tokens: Any, *, what: str = "tokens", V: int | None = None, width: int | None = None,
               max_width: int | None = None, min_width: int = 2) -> Any:
    """Check an (N, W) integer id array with N >= 1 (by default W = T+1 >= 2): numpy, memmap, torch, or a
    row array such as a sharded store.

    ``width``: the required number of columns; or ``min_width``..``max_width``. ``V``: also check every
    id is in [0, V) (a full scan: pass it only where the caller indexes V-sized tables and no other
    pass checks). Returns the array unchanged (non-arrays are converted with ``numpy.asarray``).
    """
    import torch

    if not isinstance(tokens, (np.ndarray, torch.Tensor)) and not _row_array(tokens):
        try:
            tokens = np.asarray(tokens)
        except Exception:  # noqa: BLE001 - anything unconvertible is bad input
            raise LeadingTermsError(f"{what} must be an (N, T+1) integer array") from None
    shape = tuple(tokens.shape)
    lo_w, hi_w = (width, width) if width is not None else (min_width, max_width)
    if len(shape) != 2 or shape[0] < 1 or shape[1] < lo_w or (hi_w is not None and shape[1] > hi_w):
        want = (f"(N, {width})" if width is not None else
                f"(N, W) with N >= 1 and {lo_w} <= W" + (f" <= {hi_w}" if hi_w is not None else ""))
        raise LeadingTermsError(f"{what} must have shape {want}, got {shape}")
    if isinstance(tokens, torch.Tensor):
        integer = not (tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool)
    else:
        integer = np.issubdtype(tokens.dtype, np.integer)
    if not integer:
        raise LeadingTermsError(f"{what} must hold integer token ids, got dtype {tokens.dtype}")
    if V is not None:
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= V:
            raise LeadingTermsError(f"{what} has token ids outside [0, {V}): min {lo}, max {hi}")
    return tokens


def out_folder(path: Any) -> Path:
    """``--out`` of a command that writes a folder: refused (one line) when empty or an existing file."""
    if isinstance(path, str) and not path.strip():
        raise LeadingTermsError("--out must name a folder, got an empty string")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise LeadingTermsError(f"--out {out} exists and is not a folder")
    return out


def refuse_foreign(out: Path, what: str, is_own: Callable[[Path], bool]) -> None:
    """The overwrite policy's rule for a folder output that exists: it may hold only entries ``is_own`` accepts
    (what a ``what`` writes; dot files aside); anything else is written into only with --force (the caller
    skips this check then)."""
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir() if not p.name.startswith(".") and not is_own(p))
    if foreign:
        raise LeadingTermsError(f"--out {out} is not empty (it holds {foreign[0]!r}) and is not {what}; pass "
                                "--force to write into it, or choose another --out")


def out_file(path: Any, kind: str) -> Path:
    """``--out`` of a command that writes one file (``kind``: e.g. ".html"): refused when empty or a folder."""
    if isinstance(path, str) and not path.strip():
        raise LeadingTermsError(f"--out must name a {kind} file, got an empty string")
    out = Path(path)
    if out.is_dir():
        raise LeadingTermsError(f"--out {out} is a directory; give the path of a {kind} file")
    return out


def all_finite(t: torch.Tensor) -> bool:
    """No NaN or ±inf in ``t`` (True for non-float tensors): a finite sum means finite entries (one pass, no
    temporary as large as ``t``); only a non-finite sum (a NaN, an inf or an overflow) is checked entry-wise."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    return bool(t.sum().isfinite()) or bool(t.isfinite().all())
