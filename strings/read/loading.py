"""Names to recognizers: one model (bundled name or file) or a committee of several (``a+b``).

The old ``strings.predictor`` (the Recognizer and its loader in one module) now points here,
so this module also names what that one did."""

from __future__ import annotations

import os
from pathlib import Path

from strings.read.committee import COMMITTEE_SEP, Committee
from strings.read.recognizer import (
    WEIGHTS_DIR, Amount, AmountReading, DigitReading, FieldReading, ItemError, Reading, Recognizer, bundled_models,
    list_models, load_one, resolve_model,
)

__all__ = [
    "WEIGHTS_DIR", "Amount", "AmountReading", "DigitReading", "FieldReading", "ItemError", "Reading", "Recognizer",
    "bundled_models", "list_models", "load", "member_names", "resolve_model",
]


def member_names(name_or_path: str | os.PathLike | None) -> list[str | os.PathLike | None]:
    """The models a name asks for: ``"a+b"`` -> ``["a", "b"]``; one name (or a file whose own
    name has a ``+`` in it) -> itself."""
    if not isinstance(name_or_path, str) or COMMITTEE_SEP not in name_or_path or Path(name_or_path).exists():
        return [name_or_path]
    names: list[str | os.PathLike | None] = [n.strip() for n in name_or_path.split(COMMITTEE_SEP)]
    if any(not n for n in names):
        raise ValueError(f"committee {name_or_path!r}: an empty member name (write e.g. 'default+general')")
    return names


def load(
    name_or_path: str | os.PathLike | None = None, device: str = "cpu", beam_size: int = 0,
    backend: str = "torch", threads: int | None = None,
) -> Recognizer:
    """Load a recognizer: the bundled default model, another bundled name, or a file path.

    Names joined by ``+`` (``"default+general"``) load a :class:`strings.read.committee.Committee`:
    every member reads, the string they jointly find likeliest wins (a file whose own name has
    a ``+`` in it is loaded as that file).
    ``beam_size > 0`` decodes with CTC beam search instead of the greedy best path.
    ``backend``: ``"torch"``, ``"torch-bf16"`` or ``"onnx"`` (ONNX Runtime, CPU; see
    ``strings.read.backends``); ``threads``: the cores the onnx backend uses (PyTorch uses its global
    ``torch.set_num_threads``).
    """
    names = member_names(name_or_path)
    members = [load_one(n, device, beam_size, backend, threads) for n in names]
    return Committee(members) if len(members) > 1 else members[0]
