"""Several models read one image; the string they jointly find likeliest is the reading.

Why rescoring and not averaging: two CTC models trained apart place their peaks on different
frames, so averaging their per-frame outputs mixes one model's blank with the other's digit
(bundled ``default`` with ``fast``, averaged frame by frame, read 55% of the cheque validation
slice where each alone reads over 91%). A string's probability under a model sums over every
frame path that spells it, so it does not depend on where the peaks sit: each member proposes
its best-path reading, every member scores every proposal (``log P_m(s | x)``, the CTC forward
sum), and the proposal with the highest summed log-probability wins. The cost is one network
pass per member plus a CTC forward pass per proposal and member.

The reading's confidence comes from each member's posterior of the winning digits: by default
their geometric mean over the voters (near 1 only where every voter finds that string likely,
so disagreement lowers it). A committee calibrated with ``strings calibrate --model a+b`` on
crops that no member trained on keeps the measure that ranked best there
(``strings.decode.confidence.COMMITTEE_MEASURES``) and its operating points; the bundled ones
are in ``strings/weights/committees.json``. Without one, its amounts are read (written form,
value) and always sent to review.

A member that reads the amount marks (``.`` ``,`` ``-``; the ``amounts`` model) writes them:
the digit readers vote on the digits, and it writes the winning digits with its likeliest marks
(the likeliest of its own reading, where that spells the winning digits and is an amount, and
the common written forms of the winner, ``strings.read.amount.written_forms``); its alignment
gives the spans. It does not vote: on the cheque validation slice it cost the default two
crops of digits when it did (RESULTS "Session 13"). It still scores the winner, which gives a
second opinion for the confidence (``members``, ``weakest``).

Example:
    >>> import strings
    >>> rec = strings.load("default+general")  # doctest: +SKIP
    >>> rec.recognize("cheque.png").text  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from strings.alphabet import Alphabet, digits_of, mark_classes
from strings.config import ColumnConfig, FieldConfig
from strings.decode.confidence import COMMITTEE_MEASURES, committee_confidence, string_log_posteriors
from strings.decode.ctc import EMPTY_CONFIDENCE, Decoded, forced_reading, greedy_decode, merge_marks
from strings.image import ImageInput, prepare
from strings.read.amount import parse_amount, written_forms
from strings.read.backends import in_lanes
from strings.read.batching import width_batches
from strings.read.calibration import Calibration
from strings.read.field import FieldReading
from strings.read.recognizer import Recognizer

__all__ = ["COMMITTEE_SEP", "Committee", "Scored"]

COMMITTEE_SEP = "+"  # strings.load("default+general"): the members' names joined by this
DEFAULT_MEASURE = "voters"  # an uncalibrated committee's confidence


@dataclass(frozen=True)
class Scored:
    """One image as the committee weighed it: the winning digits, each member's
    ``log P_m(digits | x)`` (members' order) and which members voted on them."""

    digits: str
    log_posteriors: tuple[float, ...]
    voters: tuple[bool, ...]

    def confidence(self, measure: str) -> float:
        return EMPTY_CONFIDENCE if not self.digits else committee_confidence(measure, self.log_posteriors, self.voters)


class Committee(Recognizer):
    """A :class:`Recognizer` whose network pass is that of every member, read as one.

    Members must share the digits, preprocessing and output stride (every bundled string model
    does), so that one prepared image feeds them all and the lead's digit boxes hold. A member
    may also read the amount marks (``.`` ``,`` ``-``): the digit readers then vote on the
    digits and the first mark reader (the writer) writes the winner with its likeliest marks;
    its alignment gives the spans. Where every member reads marks, all vote, each scoring a
    digit string by every way it could write it (marks count as blanks).
    """

    def __init__(self, members: Sequence[Recognizer], calibration: Calibration | None = None) -> None:
        if len(members) < 2:
            raise ValueError(f"a committee needs at least two members, got {len(members)}")
        lead = members[0]
        for m in members[1:]:
            if digits_of(m.alphabet.symbols) != digits_of(lead.alphabet.symbols):
                raise ValueError(
                    f"committee members read different alphabets: {lead.name!r} {lead.alphabet.symbols!r}, "
                    f"{m.name!r} {m.alphabet.symbols!r}"
                )
        for m in members:
            if m.preprocess != lead.preprocess or m.model.stride != lead.model.stride:
                raise ValueError(f"committee members {lead.name!r} and {m.name!r} prepare images differently")
            if m.beam is not None:
                raise ValueError(
                    "a committee proposes best-path readings: read it without a beam (--beam 0, beam_size=0)"
                )
        if calibration is not None and calibration.measure not in COMMITTEE_MEASURES:
            known = ", ".join(COMMITTEE_MEASURES)
            raise ValueError(f"a committee's confidence is one of {known}, not {calibration.measure!r}")
        name = COMMITTEE_SEP.join(m.name for m in members)
        writer = next((m for m in members if m.reads_separators), None)
        meta = {k: v for k, v in lead.metadata.items() if k not in ("calibration", "path")}
        meta.update(name=name, path=name, committee=[m.metadata.get("path", m.name) for m in members])
        if writer is not None:
            meta["alphabet"] = writer.alphabet.symbols  # the committee writes what its writer writes
        if calibration is not None:
            meta["calibration"] = calibration.to_dict()
        super().__init__(lead.model, lead.preprocess, meta, device=lead.device, backend=lead.backend)
        self.members = tuple(members)
        self.writer = writer
        # the digit readers vote; a mark reader votes only in a committee of mark readers
        self.voters = tuple(m for m in members if not m.reads_separators) or self.members
        if writer is not None:
            self.alphabet = writer.alphabet
        self.calibration = calibration  # each member keeps its own temperature; this sets the committee's measure

    @property
    def lanes(self) -> int:
        """Width batches read at once: as many as the member with the fewest allows."""
        return min(m.lanes for m in self.members)

    @property
    def measure(self) -> str:
        """The confidence the committee reports (``COMMITTEE_MEASURES``)."""
        return self.calibration.measure if self.calibration is not None else DEFAULT_MEASURE

    def _member_log_probs(self, images: list[np.ndarray]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for m in self.members:
            logits, lengths = m._logits(images)  # (B, T, C), (B,)
            t = m.calibration.temperature if m.calibration is not None else 1.0
            out.append(((logits.double() / t).log_softmax(-1).cpu(), lengths.cpu()))  # decoding runs on the CPU
        return out

    @staticmethod
    def _best_per_image(pairs: list[tuple[int, str]], scores: torch.Tensor, n: int) -> list[int]:
        """For each of ``n`` images, the index into ``pairs`` of its highest-scoring candidate
        (ties: the first). ``scores``: (P,)."""
        owner = torch.tensor([b for b, _ in pairs])  # (P,)
        best = []
        for b in range(n):
            mine = (owner == b).nonzero().flatten()  # (K,) in the order the candidates were listed
            best.append(int(mine[scores[mine].argmax()]))
        return best

    def _score(
        self, images: list[np.ndarray]
    ) -> tuple[list[Scored], list[list[Decoded]], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Each image's winning digits with every member's posterior of them; also each member's
        proposals and (B, T, C) log-probs, for writing and aligning the winner."""
        per_member = self._member_log_probs(images)
        proposals = [greedy_decode(lp, lengths, m.alphabet) for m, (lp, lengths) in zip(self.members, per_member)]
        # every (image, distinct digits proposal) pair, scored by each member in one CTC forward pass
        pairs = [(b, d) for b in range(len(images)) for d in dict.fromkeys(digits_of(p[b].text) for p in proposals)]
        owner = torch.tensor([b for b, _ in pairs])  # (P,)
        member_scores = torch.zeros(len(self.members), len(pairs), dtype=torch.float64)  # (M, P): log P_m(digits | x)
        for i, (m, (lp, lengths)) in enumerate(zip(self.members, per_member)):
            digits_only = torch.ones(lp.shape[0], dtype=torch.bool)  # (B,): a mark counts as a blank
            lp = merge_marks(lp, digits_only, mark_classes(m.alphabet.symbols))
            labels = [m.alphabet.encode(d) for _, d in pairs]
            # lp[owner]: (P, T, C)
            member_scores[i] = torch.tensor(string_log_posteriors(lp[owner], lengths[owner], labels))
        voting = tuple(m in self.voters for m in self.members)
        votes = member_scores[torch.tensor(voting)].sum(0)  # (P,)
        scored = [
            Scored(pairs[k][1], tuple(float(x) for x in member_scores[:, k]), voting)
            for k in self._best_per_image(pairs, votes, len(images))
        ]
        return scored, proposals, per_member

    def _read_normalized(self, images: list[np.ndarray]) -> list[Decoded]:
        scored, proposals, per_member = self._score(images)
        a = 0 if self.writer is None else self.members.index(self.writer)  # the member that aligns
        lp, lengths = per_member[a]
        texts = [s.digits for s in scored] if self.writer is None else self._write(scored, proposals[a], lp, lengths)
        alphabet = self.members[a].alphabet
        return [
            self._decoded(text, s, lp[b, : int(lengths[b])], alphabet) for b, (text, s) in enumerate(zip(texts, scored))
        ]

    def scored(self, greys: Sequence[np.ndarray], batch_size: int = 64) -> list[Scored]:
        """How the committee weighs each grey image (what ``strings calibrate`` fits a committee on)."""
        normed = [prepare(g, self.preprocess)[0] for g in greys]
        out: list[Scored | None] = [None] * len(normed)
        batches = width_batches([n.shape[1] for n in normed], batch_size, self.model.stride)
        scored = in_lanes(lambda idx: self._score([normed[i] for i in idx])[0], batches, self.lanes)
        for idx, batch in zip(batches, scored):
            for i, s in zip(idx, batch):
                out[i] = s
        return out  # type: ignore[return-value]

    def _write(self, scored: list[Scored], own: list[Decoded], lp: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Each winning digit string with the writer's likeliest marks: the likeliest of the
        common written forms of those digits that its alphabet can spell and, where it spells the
        winning digits and is an amount at all (``38.117-`` is not), the writer's own reading.
        ``lp``: the writer's (B, T, C) log-probs, marks as marks."""
        writer = self.writer
        assert writer is not None
        pairs: list[tuple[int, str]] = []
        for b, s in enumerate(scored):
            mine = own[b].text
            kept = [mine] if digits_of(mine) == s.digits and parse_amount(mine).value is not None else []
            forms = [c for c in written_forms(s.digits) if writer.alphabet.is_valid(c)]
            pairs += [(b, c) for c in dict.fromkeys(kept + forms or [s.digits])]
        owner = torch.tensor([b for b, _ in pairs])  # (P,)
        labels = [writer.alphabet.encode(c) for _, c in pairs]
        scores = torch.tensor(string_log_posteriors(lp[owner], lengths[owner], labels))  # (P,)
        return [pairs[k][1] for k in self._best_per_image(pairs, scores, len(scored))]

    def _decoded(self, text: str, scored: Scored, lp: torch.Tensor, alphabet: Alphabet) -> Decoded:
        """The winner as the lead (or the writer) reads it: its frames, symbol confidences and the
        committee's confidence. ``lp``: (T, C) of the member that aligns ``text``."""
        if not digits_of(text):
            return Decoded("", EMPTY_CONFIDENCE, (), ())
        return forced_reading(lp, alphabet.encode(text), text, scored.confidence(self.measure))

    def read_column(
        self, images: Iterable[ImageInput], field: FieldConfig | None = None, column: ColumnConfig | None = None,
        batch_size: int = 64,
    ) -> list[FieldReading]:
        """Refused: a column's proposals are scored on one model's logits, which a committee has not."""
        raise ValueError("column reading scores strings with one model's logits: load a single model, not a committee")

    def item_logits(self, greys: Sequence[np.ndarray], batch_size: int = 64) -> list[torch.Tensor]:
        raise ValueError(
            "a committee has no logits of its own: calibrate it through Committee.scored (strings calibrate)"
        )
