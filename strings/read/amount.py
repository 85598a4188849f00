"""Cheque amounts: a reading turned into an amount and a decision to accept it or send it to a person.

The decision uses the model's calibration (``strings calibrate``): a reading is accepted only
if its confidence clears the threshold that kept the validation error rate at or below
``max_error``, and only if it looks like an amount at all (digits, no leading zero).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["AmountReading", "format_amount", "review_reasons"]


def format_amount(digits: str, decimals: int = 0, thousands: str = ",", point: str = ".") -> str:
    """``"125000"`` -> ``"125,000"``; with ``decimals=2`` -> ``"1,250.00"``. Empty stays empty."""
    if not digits:
        return ""
    if decimals < 0:
        raise ValueError(f"decimals must be >= 0, got {decimals}")
    whole, frac = (digits[:-decimals], digits[-decimals:]) if decimals else (digits, "")
    if decimals and len(frac) < decimals:
        frac = frac.rjust(decimals, "0")
    whole = whole.lstrip("0") or "0"
    groups = []
    while whole:
        groups.append(whole[-3:])
        whole = whole[:-3]
    text = thousands.join(reversed(groups))
    return f"{text}{point}{frac}" if decimals else text


def review_reasons(text: str, confidence: float, threshold: float) -> list[str]:
    """Why a reading cannot be accepted without a person (empty list: accept)."""
    reasons = []
    if not text:
        reasons.append("no digits read")
    elif not text.isdigit():
        reasons.append("not all digits")
    elif len(text) > 1 and text[0] == "0":
        reasons.append("leading zero")
    if confidence < threshold:
        reasons.append(f"confidence {confidence:.4f} below {threshold:.4f}")
    return reasons


@dataclass(frozen=True)
class AmountReading:
    """A courtesy amount: the digits read, the formatted amount, and whether a person must look."""

    digits: str
    amount: str
    confidence: float
    needs_review: bool
    reasons: tuple[str, ...]
    max_error: float
    threshold: float  # inf: no confidence reached max_error on validation, so all go to review

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        d["threshold"] = None if self.threshold == float("inf") else self.threshold
        return d
