"""A prior over amounts for CTC beam search: a character n-gram of digit strings.

Amounts are not random digit strings: they rarely start with 0, often end in 0s, and have
typical lengths. The model below learns that from the training labels only (add-k smoothed
counts) and plugs into torchaudio's flashlight decoder as its language model. It is kept as
JSON counts in the model file, so nothing is pickled.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState

__all__ = ["AmountNgram", "DecoderLM"]

BOS, EOS = "<", ">"  # context padding and end-of-string symbols (never digits)


@dataclass(frozen=True)
class AmountNgram:
    """Add-k smoothed character n-gram over ``symbols`` plus an end-of-string event."""

    symbols: str
    order: int
    counts: tuple[tuple[str, int], ...]  # n-gram text (context + next symbol) -> count
    k: float = 0.5

    @classmethod
    def fit(cls, strings: Iterable[str], symbols: str, order: int = 3, k: float = 0.5) -> AmountNgram:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        counts: Counter[str] = Counter()
        for s in strings:
            if any(ch not in symbols for ch in s):
                raise ValueError(f"training string {s!r} has symbols outside {symbols!r}")
            padded = BOS * (order - 1) + s + EOS
            for i in range(order - 1, len(padded)):
                counts[padded[i - order + 1 : i + 1]] += 1
        return cls(symbols, order, tuple(sorted(counts.items())), k)

    def logprob(self, context: str, symbol: str) -> float:
        """log P(symbol | the last order-1 symbols of BOS-padded ``context``); symbol may be EOS."""
        ctx = (BOS * (self.order - 1) + context)[-(self.order - 1) :] if self.order > 1 else ""
        vocab = len(self.symbols) + 1
        table, totals = self._tables
        return math.log((table.get(ctx + symbol, 0) + self.k) / (totals.get(ctx, 0) + self.k * vocab))

    @functools.cached_property
    def _tables(self) -> tuple[dict[str, int], dict[str, int]]:
        """n-gram counts and per-context totals as dicts, built on first use."""
        table = dict(self.counts)
        totals: Counter[str] = Counter()
        for gram, c in table.items():
            totals[gram[:-1]] += c
        return table, dict(totals)

    def to_dict(self) -> dict[str, object]:
        return {"symbols": self.symbols, "order": self.order, "k": self.k, "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> AmountNgram:
        try:
            counts = d["counts"]
            if not isinstance(counts, dict) or not all(isinstance(v, int) and v >= 0 for v in counts.values()):
                raise ValueError("counts must map n-grams to non-negative integers")
            order, k = int(d["order"]), float(d["k"])  # type: ignore[arg-type]
            if not 1 <= order <= 8 or not k > 0:
                raise ValueError(f"order {order} / k {k} out of range")
            return cls(str(d["symbols"]), order, tuple(sorted(counts.items())), k)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad amount n-gram: {exc!r}") from None


class DecoderLM(CTCDecoderLM):
    """The n-gram as torchaudio's decoder LM. Decoder token i (0 = blank) is symbol i - 1.
    Each decoder state keeps the digits emitted so far, so scores depend on the prefix.

    Scores are log-ratios against a uniform prior over the symbols and the end event: a digit
    the n-gram finds as likely as any other costs nothing, so the prior reorders hypotheses
    without pulling every reading towards fewer digits."""

    def __init__(self, ngram: AmountNgram) -> None:
        CTCDecoderLM.__init__(self)
        self.ngram = ngram
        self._uniform = math.log(len(ngram.symbols) + 1)
        self._prefix: dict[CTCDecoderLMState, str] = {}

    def start(self, start_with_nothing: bool = False) -> CTCDecoderLMState:
        state = CTCDecoderLMState()
        self._prefix = {state: ""}  # one decode call at a time: forget the last call's states
        return state

    def score(self, state: CTCDecoderLMState, usr_token_idx: int) -> tuple[CTCDecoderLMState, float]:
        child = state.child(usr_token_idx)
        prefix = self._prefix[state]
        if usr_token_idx == 0:  # the blank doubles as the decoder's word separator: no event
            self._prefix.setdefault(child, prefix)
            return child, 0.0
        symbol = self.ngram.symbols[usr_token_idx - 1]
        self._prefix.setdefault(child, prefix + symbol)
        return child, self.ngram.logprob(prefix, symbol) + self._uniform

    def finish(self, state: CTCDecoderLMState) -> tuple[CTCDecoderLMState, float]:
        return state, self.ngram.logprob(self._prefix[state], EOS) + self._uniform
