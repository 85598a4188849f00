"""The output symbols of a recognizer and the mapping between text and class indices.

Class 0 is always the CTC blank; symbol ``i`` of the alphabet is class ``i + 1``. Keeping that
rule in one place is what lets the loss, the decoders and the checkpoints agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AMOUNT_MARKS", "AMOUNT_SYMBOLS", "BLANK", "DIGITS", "SCRIPT_DIGITS", "SEPARATORS", "ZERO_CENTS", "Alphabet", "digits_of",
    "mark_classes", "script_of",
]

BLANK = 0
DIGITS = "0123456789"
# Marks an amount model transcribes besides the digits: the separators written between them
# and the dash of ".-" (zero cents). The ORAND protocol string is the digits alone.
SEPARATORS = ".,"  # written between digits: thousands groups, or the start of the cents
ZERO_CENTS = "-"  # after the last separator, "38.117.-": zero cents
AMOUNT_MARKS = SEPARATORS + ZERO_CENTS
AMOUNT_SYMBOLS = DIGITS + AMOUNT_MARKS


def _numerals(zero: int) -> str:
    """The ten decimal numerals of a Unicode script, from the code point of its zero."""
    return "".join(chr(zero + k) for k in range(10))


# Numerals per script: symbol k is the numeral for the value k (Unicode keeps each script's
# digits contiguous, zero first). A single-digit classifier predicts the value; a string model
# of a script uses that script's numerals as its alphabet.
SCRIPT_DIGITS: dict[str, str] = {
    "latin": DIGITS,
    "bangla": _numerals(0x09E6),
    "devanagari": _numerals(0x0966),
    "gurmukhi": _numerals(0x0A66),
    "gujarati": _numerals(0x0AE6),
    "telugu": _numerals(0x0C66),
    "kannada": _numerals(0x0CE6),
}


def script_of(symbols: str) -> str:
    """The script whose numerals ``symbols`` are, or ``"custom"`` for any other alphabet."""
    return next((name for name, digits in SCRIPT_DIGITS.items() if digits == symbols), "custom")


@dataclass(frozen=True)
class Alphabet:
    """An ordered set of single-character symbols; the blank is implicit at index 0.

    Example:
        >>> a = Alphabet(DIGITS)
        >>> a.encode("907")
        [10, 1, 8]
        >>> a.decode([10, 1, 8])
        '907'
    """

    symbols: str = DIGITS

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("an alphabet needs at least one symbol")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"alphabet symbols repeat: {self.symbols!r}")

    @property
    def num_classes(self) -> int:
        """Symbols plus the blank: the width of the model's output layer."""
        return len(self.symbols) + 1

    @property
    def blank(self) -> int:
        return BLANK

    def encode(self, text: str) -> list[int]:
        """Text to class indices; raises ``ValueError`` naming the first unknown character."""
        out = []
        for ch in text:
            idx = self.symbols.find(ch)
            if idx < 0:
                raise ValueError(f"character {ch!r} in {text!r} is not in the alphabet {self.symbols!r}")
            out.append(idx + 1)
        return out

    def decode(self, indices: list[int]) -> str:
        """Class indices (no blanks) back to text."""
        for i in indices:
            if not 1 <= i <= len(self.symbols):
                raise ValueError(f"class index {i} is not a symbol of {self.symbols!r} (the blank is 0)")
        return "".join(self.symbols[i - 1] for i in indices)

    def is_valid(self, text: str) -> bool:
        return all(ch in self.symbols for ch in text)


def mark_classes(symbols: str) -> list[int]:
    """The class indices of the amount marks in an alphabet's ``symbols`` (empty: a digits-only
    model, which neither learns nor writes separators)."""
    return [i + 1 for i, c in enumerate(symbols) if c in AMOUNT_MARKS]


def digits_of(text: str) -> str:
    """``text`` without its amount marks: ``"1.500,00"`` -> ``"150000"`` (the ORAND protocol string)."""
    return "".join(c for c in text if c not in AMOUNT_MARKS)
