"""Several models read one image; the string they jointly find likeliest is the reading.

Why rescoring and not averaging: two CTC models trained apart place their peaks on different
frames, so averaging their per-frame outputs mixes one model's blank with the other's digit
(bundled ``default`` with ``fast``, averaged frame by frame, read 55% of the cheque validation
slice where each alone reads over 91%). A string's probability under a model sums over every
frame path that spells it, so it does not depend on where the peaks sit: each member proposes
its best-path reading, every member scores every proposal (``log P_m(s | x)``, the CTC forward
sum), and the proposal with the highest summed log-probability wins. The cost is one network
pass per member plus a CTC forward pass per proposal and member.

The reading's confidence is the geometric mean of the members' posteriors of the winning
string: near 1 only where every member finds that string likely, so disagreement lowers it.
Digit spans and digit confidences come from the first member (the lead), by forced alignment
of the winner. A committee has no fitted operating point of its own: its amounts are
read (written form, value) and always sent to review.

A member that reads the amount marks (``.`` ``,`` ``-``; the ``amounts`` model) writes them:
the digit readers vote on the digits, and it writes the winning digits with its likeliest marks
(its own reading where its digits won, else the likeliest of the common written forms of the
winner, ``strings.read.amount.written_forms``). It does not vote: on the cheque validation slice
it cost the default two crops of digits when it did (RESULTS "Session 13"). So the digits come
from the digit readers and the separators from the one member that sees them
(``strings.load("default+general+amounts")``).

Example:
    >>> import strings
    >>> rec = strings.load("default+general")  # doctest: +SKIP
    >>> rec.recognize("cheque.png").text  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from strings.alphabet import AMOUNT_MARKS, Alphabet, mark_classes
from strings.decode.confidence import string_log_posteriors
from strings.decode.ctc import EMPTY_CONFIDENCE, Decoded, align_spans, greedy_decode, merge_marks
from strings.read.amount import DEFAULT_LOCALE, Amount, decide, parse_amount, written_forms
from strings.read.recognizer import Reading, Recognizer

__all__ = ["COMMITTEE_SEP", "Committee"]

COMMITTEE_SEP = "+"  # strings.load("default+general"): the members' names joined by this


def _digits(text: str) -> str:
    return "".join(c for c in text if c not in AMOUNT_MARKS)


class Committee(Recognizer):
    """A :class:`Recognizer` whose network pass is that of every member, read as one.

    Members must share the digits, preprocessing and output stride (every bundled string model
    does), so that one prepared image feeds them all and the lead's digit boxes hold. A member
    may also read the amount marks (``.`` ``,`` ``-``): the digit readers then vote on the
    digits and the first mark reader (the writer) writes the winner with its likeliest marks;
    its alignment gives the spans. Where every member reads marks, all vote, each scoring a
    digit string by every way it could write it (marks count as blanks).
    """

    def __init__(self, members: Sequence[Recognizer]) -> None:
        if len(members) < 2:
            raise ValueError(f"a committee needs at least two members, got {len(members)}")
        lead = members[0]
        for m in members[1:]:
            if _digits(m.alphabet.symbols) != _digits(lead.alphabet.symbols):
                raise ValueError(
                    f"committee members read different alphabets: {lead.name!r} {lead.alphabet.symbols!r}, "
                    f"{m.name!r} {m.alphabet.symbols!r}"
                )
        for m in members:
            if m.preprocess != lead.preprocess or m.model.stride != lead.model.stride:
                raise ValueError(f"committee members {lead.name!r} and {m.name!r} prepare images differently")
            if m.beam is not None:
                raise ValueError("a committee proposes best-path readings: read it without a beam (--beam 0, beam_size=0)")
        name = COMMITTEE_SEP.join(m.name for m in members)
        meta = {k: v for k, v in lead.metadata.items() if k not in ("calibration", "path")}
        meta.update(name=name, path=name, committee=[m.metadata.get("path", m.name) for m in members])
        super().__init__(lead.model, lead.preprocess, meta, device=lead.device, backend=lead.backend)
        self.members = tuple(members)
        self.writer = next((m for m in members if m.reads_separators), None)
        # the digit readers vote; a mark reader votes only in a committee of mark readers
        self.voters = tuple(m for m in members if not m.reads_separators) or self.members
        if self.writer is not None:
            self.alphabet = self.writer.alphabet  # the committee writes what its writer writes
        self.calibration = None  # each member keeps its own temperature; the committee has none

    def _member_log_probs(self, images: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for m in self.members:
            logits, lengths = m._logits(images)  # (B, T, C), (B,)
            t = m.calibration.temperature if m.calibration is not None else 1.0
            out.append(((logits.double() / t).log_softmax(-1).cpu(), lengths.cpu()))  # decoding runs on the CPU
        return out

    def _read_normalized(self, images: list[np.ndarray]) -> list[Decoded]:
        per_member = self._member_log_probs(images)
        proposals = [greedy_decode(lp, lengths, m.alphabet) for m, (lp, lengths) in zip(self.members, per_member)]
        # every (image, distinct digits proposal) pair, scored by each member in one CTC forward pass
        pairs = [(b, d) for b in range(len(images)) for d in dict.fromkeys(_digits(p[b].text) for p in proposals)]
        owner = torch.tensor([b for b, _ in pairs])  # (P,)
        scores = torch.zeros(len(pairs), dtype=torch.float64)  # (P,) summed over voters: log P_m(digits | x)
        for m, (lp, lengths) in zip(self.members, per_member):
            if m not in self.voters:
                continue
            marks = mark_classes(m.alphabet.symbols)
            lp = merge_marks(lp, torch.ones(lp.shape[0], dtype=torch.bool), marks)  # a mark counts as a blank
            labels = [m.alphabet.encode(d) for _, d in pairs]
            scores += torch.tensor(string_log_posteriors(lp[owner], lengths[owner], labels))  # lp[owner]: (P, T, C)
        winners: list[tuple[str, float]] = []
        for b in range(len(images)):
            mine = (owner == b).nonzero().flatten()  # (K,) in members' order
            k = int(mine[scores[mine].argmax()])
            winners.append((pairs[k][1], float(scores[k])))
        a = 0 if self.writer is None else self.members.index(self.writer)  # the member that aligns
        lp, lengths = per_member[a]
        texts = [d for d, _ in winners] if self.writer is None else self._write(winners, proposals[a], lp, lengths)
        alphabet = self.members[a].alphabet
        return [
            self._decoded(text, score, lp[b, : int(lengths[b])], alphabet)
            for b, (text, (_, score)) in enumerate(zip(texts, winners))
        ]

    def _write(
        self, winners: list[tuple[str, float]], own: list[Decoded], lp: torch.Tensor, lengths: torch.Tensor
    ) -> list[str]:
        """Each winning digit string with the writer's likeliest marks: the likeliest of the
        common written forms of those digits and, where its digits won and it is an amount at
        all (``38.117-`` is not), the writer's own reading.
        ``lp``: the writer's (B, T, C) log-probs, marks as marks."""
        pairs = []
        for b, (digits, _) in enumerate(winners):
            kept = own[b].text if _digits(own[b].text) == digits and parse_amount(own[b].text).value is not None else None
            cands = ([kept] if kept else []) + written_forms(digits)  # its own reading only if it is an amount
            pairs += [(b, c) for c in dict.fromkeys(cands or [digits])]
        owner = torch.tensor([b for b, _ in pairs])  # (P,)
        labels = [self.writer.alphabet.encode(c) for _, c in pairs]  # type: ignore[union-attr]
        scores = torch.tensor(string_log_posteriors(lp[owner], lengths[owner], labels))  # (P,)
        out = []
        for b in range(len(winners)):
            mine = (owner == b).nonzero().flatten()
            out.append(pairs[int(mine[scores[mine].argmax()])][1])
        return out

    def _decoded(self, text: str, log_score: float, lp: torch.Tensor, alphabet: Alphabet) -> Decoded:
        """The winner as the lead (or the writer) reads it: its frames, symbol confidences and the
        committee's confidence (geometric mean of the voters' posteriors of the digits).
        ``lp``: (T, C) of the member that aligns ``text``."""
        if not _digits(text):
            return Decoded("", EMPTY_CONFIDENCE, (), ())
        labels = alphabet.encode(text)
        spans = align_spans(lp, labels)
        probs = lp.exp()  # (T, C)
        char_conf = tuple(float(probs[s:e, k].max()) for k, (s, e) in zip(labels, spans))
        confidence = math.exp(log_score / len(self.voters)) if math.isfinite(log_score) else 0.0
        return Decoded(text, confidence, char_conf, spans)

    def item_logits(self, greys: Sequence[np.ndarray], batch_size: int = 64) -> list[torch.Tensor]:
        raise ValueError("a committee has no logits of its own: name one model here (calibrate or box with each member alone)")

    def threshold(self, max_error: float) -> float:
        """No fitted operating point: no confidence clears it (``inf``). Fitting one needs real
        crops that no member trained or was chosen on, and none are left."""
        return math.inf

    def amount_of(self, reading: Reading, max_error: float = 0.01, *, locale: str = DEFAULT_LOCALE) -> Amount:
        """The amount as written and its value, always ``review`` (``NO_OPERATING_POINT``)."""
        return decide(reading.written or reading.text, reading.confidence, None, max_error, locale, self.reads_separators)
