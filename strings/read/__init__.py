"""Reading: the Recognizer (image -> Reading) and what serves it: backends, ONNX export,
width batching, digit boxes, calibration, amounts and drawing."""

from __future__ import annotations

from strings.read.amount import AmountReading
from strings.read.committee import Committee
from strings.read.loading import load
from strings.read.recognizer import (
    DigitReading, ItemError, Reading, Recognizer, bundled_models, list_models, resolve_model,
)

__all__ = [
    "AmountReading", "Committee", "DigitReading", "ItemError", "Reading", "Recognizer", "bundled_models", "list_models", "load",
    "resolve_model",
]
