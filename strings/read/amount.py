"""Cheque amounts: a reading turned into a value and a decision to accept it or send it to a person.

Two steps, kept apart so each can be tested on its own:
- :func:`parse_amount` reads a written amount (digits and the separators between them, as the
  writer put them: ``1.500,00``, ``10,00``, ``20.000``, ``38.117.-``) under a locale's
  convention and returns its value in two decimals, with every reason to doubt it;
- :func:`decide` adds the model's confidence against the threshold its calibration set for a
  target error rate (``strings calibrate``), and says ``accept`` or ``review``.

A reading's value is trusted only when the separators were read: a model whose alphabet has
no separator cannot tell ``10,00`` (ten) from ``1000`` (a thousand), so every amount it reads
goes to review with that reason, instead of being guessed into a 100x error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from strings.alphabet import DIGITS, SEPARATORS, ZERO_CENTS
from strings.metrics import acceptance, wilson_interval

__all__ = [
    "DEFAULT_LOCALE", "LOCALES", "NO_OPERATING_POINT", "THOUSANDS_GROUP", "Amount", "AmountReading", "Convention",
    "ParsedAmount", "accepted_amounts", "decide", "format_amount", "parse_amount", "review_reasons", "written_forms",
    "written_scores",
]

CENTS = 2  # decimal places of every value (minor units per unit: 10 ** CENTS)
THOUSANDS_GROUP = 3  # digits per thousands group


@dataclass(frozen=True)
class Convention:
    """How a locale writes amounts: the mark that groups thousands and the decimal mark."""

    thousands: str
    decimal: str


# The cheques of ORAND-CAR (and this subset) group thousands with "." and write cents after ",".
LOCALES: dict[str, Convention] = {
    "es-UY": Convention(thousands=".", decimal=","),
    "pt-BR": Convention(thousands=".", decimal=","),
    "en-US": Convention(thousands=",", decimal="."),
}
DEFAULT_LOCALE = "es-UY"

# Reasons, worded once (tests and clients match on them).
NOTHING_READ = "nothing read"
NOT_AN_AMOUNT = "not an amount: characters other than digits and separators"
LEADING_ZERO = "leading zero"
ZERO_AMOUNT = "an amount of zero"
IMPOSSIBLE_GROUPING = "impossible grouping"
AMBIGUOUS_DECIMAL = "ambiguous decimal mark"
NO_SEPARATORS = "this model reads no separators, so where the cents begin is unknown"
LOW_CONFIDENCE = "low confidence"
NO_OPERATING_POINT = "no fitted operating point (an uncalibrated reader): a person checks every amount"


@dataclass(frozen=True)
class ParsedAmount:
    """A written amount read under a convention: its value (None when there is none) and doubts."""

    written: str
    digits: str
    value: Decimal | None
    reasons: tuple[str, ...]

    @property
    def minor_units(self) -> int | None:
        return None if self.value is None else int(self.value.scaleb(CENTS))


def _grouped(part: str, mark: str) -> bool:
    """Whether ``part`` groups thousands properly with ``mark``: 1-3 digits, then groups of 3."""
    groups = part.split(mark)
    return (1 <= len(groups[0]) <= THOUSANDS_GROUP and all(len(g) == THOUSANDS_GROUP for g in groups[1:])
            and all(_ascii_digits(g) for g in groups))


def _ascii_digits(text: str) -> bool:
    """``str.isdigit`` for 0-9 only (it also accepts other scripts' digits and superscripts)."""
    return bool(text) and all(c in DIGITS for c in text)


def parse_amount(written: str, locale: str = DEFAULT_LOCALE) -> ParsedAmount:
    """The value of an amount as written, under ``locale``'s convention, with the reasons it is
    doubtful (an empty tuple: a clean amount).

    Example:
        >>> parse_amount("1.500,00").value, parse_amount("10,00").value, parse_amount("38.117.-").value
        (Decimal('1500.00'), Decimal('10.00'), Decimal('38117.00'))
        >>> parse_amount("5,155").reasons
        ('ambiguous decimal mark',)
    """
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}; known: {', '.join(LOCALES)}")
    conv = LOCALES[locale]
    text = written.strip()
    digits = "".join(c for c in text if c in DIGITS)
    if not digits:
        return ParsedAmount(written, "", None, (NOTHING_READ,))
    if any(not (c in DIGITS or c in SEPARATORS or c == ZERO_CENTS) for c in text):
        return ParsedAmount(written, digits, None, (NOT_AN_AMOUNT,))
    reasons: list[str] = []
    whole, cents = text, ""
    if text.endswith(ZERO_CENTS) and len(text) >= 2 and text[-2] in SEPARATORS and ZERO_CENTS not in text[:-1]:
        whole, cents = text[:-2], "0" * CENTS  # "38.117.-"
    elif ZERO_CENTS in text:
        return ParsedAmount(written, digits, None, (NOT_AN_AMOUNT,))
    else:
        last = max(text.rfind(s) for s in SEPARATORS)
        tail = text[last + 1 :] if last >= 0 else ""
        if last >= 0 and 1 <= len(tail) <= CENTS and _ascii_digits(tail):
            # a mark before one or two final digits can only start the cents, whichever mark it is
            whole, cents = text[:last], tail.ljust(CENTS, "0")
            if text[last] != conv.decimal:
                reasons.append(AMBIGUOUS_DECIMAL)
        elif (last >= 0 and text[last] == conv.decimal and len(tail) == THOUSANDS_GROUP
              and conv.decimal not in text[:last]):
            # "5,155": a decimal mark before three digits; read as thousands, as a clerk would
            whole = text[:last] + conv.thousands + tail
            reasons.append(AMBIGUOUS_DECIMAL)
    marks = {c for c in whole if c in SEPARATORS}
    if marks and (marks != {conv.thousands} or not _grouped(whole, conv.thousands)):
        reasons.append(IMPOSSIBLE_GROUPING)  # also a leading or trailing mark: an empty group
    integer = "".join(c for c in whole if c in DIGITS) or "0"
    if len(integer) > 1 and integer[0] == "0":
        reasons.append(LEADING_ZERO)
    value = Decimal(f"{int(integer)}.{cents or '0' * CENTS}")
    if not value:
        reasons.append(ZERO_AMOUNT)  # no cheque is written for nothing: a speck or a stray mark read as 0
    return ParsedAmount(written, digits, value, tuple(dict.fromkeys(reasons)))


def written_forms(digits: str) -> list[str]:
    """Every common way to write the amount ``digits`` with marks, under any locale: as they are,
    thousands grouped by ``.`` or ``,``, two cents after the other mark, or a dash after either
    mark for zero cents (``38.117.-``). A committee whose member reads marks picks the likeliest of
    these (with that member's own reading) for the digits the committee chose.

    Example:
        >>> "1.500,00" in written_forms("150000"), "38.117.-" in written_forms("38117")
        (True, True)
    """
    if not _ascii_digits(digits):
        return []
    splits = [(digits, "")] + ([(digits[:-CENTS], digits[-CENTS:])] if len(digits) > CENTS else [])
    forms: list[str] = []
    for whole, cents in splits:
        groupings = [("", whole)]
        if len(whole) > THOUSANDS_GROUP:
            head = len(whole) % THOUSANDS_GROUP or THOUSANDS_GROUP
            groups = [whole[:head]] + [whole[i : i + THOUSANDS_GROUP] for i in range(head, len(whole), THOUSANDS_GROUP)]
            groupings += [(mark, mark.join(groups)) for mark in SEPARATORS]
        for mark, text in groupings:
            if cents:
                forms += [f"{text}{m}{cents}" for m in SEPARATORS if m != mark]
            else:
                forms += [text] + [f"{text}{m}{ZERO_CENTS}" for m in SEPARATORS]
    return list(dict.fromkeys(forms))


@dataclass(frozen=True)
class Amount:
    """A courtesy amount: as read, its digits (the ORAND protocol string), its value and minor
    units, the convention used, and the decision with its reasons.

    ``value`` is a ``Decimal`` with two places (a string ``"1500.00"`` in ``to_dict``). A value
    is returned even under ``review``, for the person who checks it; ``None`` only when there is
    no number at all."""

    written: str
    digits: str
    value: Decimal | None
    minor_units: int | None
    locale: str
    thousands: str
    decimal: str
    status: str  # "accept" | "review"
    reasons: tuple[str, ...]
    confidence: float
    threshold: float  # inf: no confidence reached max_error on validation, so every amount is reviewed
    max_error: float

    @property
    def needs_review(self) -> bool:
        return self.status != "accept"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["value"] = None if self.value is None else str(self.value)
        d["reasons"] = list(self.reasons)
        d["threshold"] = None if self.threshold == float("inf") else self.threshold
        d["needs_review"] = self.needs_review
        return d


def decide(
    written: str, confidence: float, threshold: float | None, max_error: float, locale: str = DEFAULT_LOCALE,
    reads_separators: bool = True,
) -> Amount:
    """The amount of one reading and whether to accept it: every doubt of ``parse_amount``, a
    model blind to separators, and a confidence under ``threshold`` each send it to review.
    ``threshold=None``: the reader has no fitted operating point, so every amount is reviewed."""
    parsed = parse_amount(written, locale)
    reasons = list(parsed.reasons)
    if parsed.value is not None and not reads_separators:
        reasons.append(NO_SEPARATORS)
    if threshold is None:
        reasons.append(NO_OPERATING_POINT)
        threshold = float("inf")
    elif confidence < threshold:
        reasons.append(LOW_CONFIDENCE)
    conv = LOCALES[locale]
    return Amount(
        written, parsed.digits, parsed.value, parsed.minor_units, locale, conv.thousands, conv.decimal,
        "review" if reasons else "accept", tuple(reasons), confidence, threshold, max_error,
    )


def written_scores(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Beside the digits protocol, over (written truth, written reading) pairs: exact written
    form and exact value under the cheques' convention, each with a 95% Wilson interval."""
    n = len(pairs)
    written_ok = sum(truth == read for truth, read in pairs)
    value_ok = sum(parse_amount(truth).value == parse_amount(read).value for truth, read in pairs)
    return {
        "n": n,
        "accuracy": written_ok / n if n else 0.0, "accuracy_ci95": list(wilson_interval(written_ok, n)),
        "value_accuracy": value_ok / n if n else 0.0, "value_accuracy_ci95": list(wilson_interval(value_ok, n)),
    }


def accepted_amounts(
    pairs: list[tuple[str, str]], confidences: list[float], threshold: float | None, max_error: float,
    reads_separators: bool = True, locale: str = DEFAULT_LOCALE,
) -> dict[str, object]:
    """What ``decide`` does at a threshold fixed beforehand, over (written truth, written
    reading) pairs: the amounts it accepts and how many of those have a wrong value (the error a
    bank pays for), with intervals (``strings.metrics.acceptance``)."""
    accepted = errors = 0
    for (truth, read), conf in zip(pairs, confidences):
        amount = decide(read, conf, threshold, max_error, locale, reads_separators)
        if amount.status == "accept":
            accepted += 1
            errors += amount.value != parse_amount(truth, locale).value
    return acceptance(accepted, errors, len(pairs), threshold)


# ----------------------------------------------------------------------------- digits-only amounts


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
    """Why a digits-only reading cannot be accepted without a person (empty list: accept)."""
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
    """The digits-only view of an amount (``Recognizer.amount``): the digits read, the formatted
    amount, and whether a person must look. ``Recognizer.read_amount`` gives the full ``Amount``."""

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
