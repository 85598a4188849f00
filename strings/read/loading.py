"""Names to recognizers: one model (bundled name or file) or a committee of several (``a+b``).

The old ``strings.predictor`` (the Recognizer and its loader in one module) now points here,
so this module also names what that one did."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from strings.read.calibration import Calibration
from strings.read.committee import COMMITTEE_SEP, Committee
from strings.read.recognizer import (
    WEIGHTS_DIR, Amount, AmountReading, DigitReading, FieldReading, ItemError, Reading, Recognizer, bundled_models,
    list_models, load_one, resolve_model,
)

__all__ = [
    "COMMITTEES_FILE", "WEIGHTS_DIR", "Amount", "AmountReading", "DigitReading", "FieldReading", "ItemError", "Reading",
    "Recognizer", "bundled_committee_calibration", "bundled_models", "committee_record", "list_models", "load",
    "member_names", "resolve_model",
]

COMMITTEES_FILE = WEIGHTS_DIR / "committees.json"  # committee name -> its members' hashes and calibration


def member_names(name_or_path: str | os.PathLike | None) -> list[str | os.PathLike | None]:
    """The models a name asks for: ``"a+b"`` -> ``["a", "b"]``; one name (or a file whose own
    name has a ``+`` in it) -> itself."""
    if not isinstance(name_or_path, str) or COMMITTEE_SEP not in name_or_path or Path(name_or_path).exists():
        return [name_or_path]
    names: list[str | os.PathLike | None] = [n.strip() for n in name_or_path.split(COMMITTEE_SEP)]
    if any(not n for n in names):
        raise ValueError(f"committee {name_or_path!r}: an empty member name (write e.g. 'default+general')")
    return names


def committee_record(names: list[str], calibration: Calibration) -> dict[str, Any]:
    """The ``committees.json`` entry of a committee of bundled models: the hash of each member it
    was fitted with (a calibration holds only for those files) and its calibration."""
    bundled = bundled_models()
    missing = [n for n in names if n not in bundled]
    if missing:
        raise ValueError(f"only committees of bundled models are recorded; not bundled: {', '.join(missing)}")
    return {"members": {n: bundled[n][1] for n in names}, "calibration": calibration.to_dict()}


def bundled_committee_calibration(names: list[str], path: Path = COMMITTEES_FILE) -> Calibration | None:
    """The calibration fitted for this committee of bundled models, if one was and its members
    are still the files it was fitted with; else ``None`` (an uncalibrated committee)."""
    if not path.is_file():
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get(COMMITTEE_SEP.join(names))
    bundled = bundled_models()
    if entry is None or any(n not in bundled or bundled[n][1] != d for n, d in entry["members"].items()):
        return None
    return Calibration.from_dict(entry["calibration"])


def load(
    name_or_path: str | os.PathLike | None = None, device: str = "cpu", beam_size: int = 0,
    backend: str = "torch", threads: int | None = None,
) -> Recognizer:
    """Load a recognizer: the bundled default model, another bundled name, or a file path.

    Names joined by ``+`` (``"default+general"``) load a :class:`strings.read.committee.Committee`:
    every member reads, the string they jointly find likeliest wins (a file whose own name has
    a ``+`` in it is loaded as that file); a committee of bundled models fitted with ``strings
    calibrate`` gets its operating points from ``strings/weights/committees.json``.
    ``beam_size > 0`` decodes with CTC beam search instead of the greedy best path.
    ``backend``: ``"torch"``, ``"torch-bf16"`` or ``"onnx"`` (ONNX Runtime, CPU; see
    ``strings.read.backends``); ``threads``: the cores the onnx backend uses (PyTorch uses its global
    ``torch.set_num_threads``).
    """
    names = member_names(name_or_path)
    members = [load_one(n, device, beam_size, backend, threads) for n in names]
    if len(members) == 1:
        return members[0]
    calibration = bundled_committee_calibration([str(n) for n in names])
    return Committee(members, calibration)
