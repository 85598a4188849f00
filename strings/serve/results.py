"""The record of one image, the same object ``strings recognize --json`` prints.

``reading_record`` is the one place a Reading becomes a row of the service, and ``amount_row``
builds the amount exactly as ``strings recognize --amount`` does, so the two never drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from strings.read.amount import DEFAULT_LOCALE
from strings.read.recognizer import Reading, Recognizer
from strings.serve.errors import ItemProblem

__all__ = ["AmountRequest", "amount_row", "error_record", "reading_record"]


@dataclass(frozen=True)
class AmountRequest:
    """What the amount row is judged at (``Recognizer.amount_of``'s arguments)."""

    max_error: float = 0.01
    locale: str = DEFAULT_LOCALE


def amount_row(rec: Recognizer, reading: Reading, request: AmountRequest) -> dict[str, Any]:
    """The amount as ``strings recognize --amount`` adds it; its cents come from the separators read."""
    return rec.amount_of(reading, request.max_error, locale=request.locale).to_dict()


def reading_record(rec: Recognizer, reading: Reading, name: str, amount: AmountRequest | None = None) -> dict[str, Any]:
    """``{**reading, "image": name, "source": name}`` and, when asked, ``"amount"``."""
    record: dict[str, Any] = {**reading.to_dict(), "image": name, "source": name}
    if amount is not None:
        record["amount"] = amount_row(rec, reading, amount)
    return record


def error_record(name: str, problem: ItemProblem) -> dict[str, Any]:
    return {"image": name, "error": problem.to_dict()}
