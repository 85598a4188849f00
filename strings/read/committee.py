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
of the winner. A committee has no fitted operating point of its own (``threshold`` refuses).

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

from strings.decode.confidence import string_log_posteriors
from strings.decode.ctc import EMPTY_CONFIDENCE, Decoded, align_spans, greedy_decode
from strings.read.recognizer import Recognizer

__all__ = ["COMMITTEE_SEP", "Committee"]

COMMITTEE_SEP = "+"  # strings.load("default+general"): the members' names joined by this


class Committee(Recognizer):
    """A :class:`Recognizer` whose network pass is that of every member, read as one.

    Members must share the alphabet, preprocessing and output stride (every bundled string
    model does), so that one prepared image feeds them all and the lead's digit boxes hold.
    """

    def __init__(self, members: Sequence[Recognizer]) -> None:
        if len(members) < 2:
            raise ValueError(f"a committee needs at least two members, got {len(members)}")
        lead = members[0]
        for m in members[1:]:
            if m.alphabet.symbols != lead.alphabet.symbols:
                raise ValueError(
                    f"committee members read different alphabets: {lead.name!r} {lead.alphabet.symbols!r}, "
                    f"{m.name!r} {m.alphabet.symbols!r}"
                )
            if m.preprocess != lead.preprocess or m.model.stride != lead.model.stride:
                raise ValueError(f"committee members {lead.name!r} and {m.name!r} prepare images differently")
            if m.beam is not None:
                raise ValueError("a committee proposes best-path readings: read it without a beam (--beam 0, beam_size=0)")
        name = COMMITTEE_SEP.join(m.name for m in members)
        meta = {k: v for k, v in lead.metadata.items() if k not in ("calibration", "path")}
        meta.update(name=name, path=name, committee=[m.metadata.get("path", m.name) for m in members])
        super().__init__(lead.model, lead.preprocess, meta, device=lead.device, backend=lead.backend)
        self.members = tuple(members)
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
        proposals = [greedy_decode(lp, lengths, self.alphabet) for lp, lengths in per_member]
        lead_lp, lead_len = per_member[0]
        # every (image, distinct proposal) pair, scored by each member in one CTC forward pass
        pairs = [(b, t) for b in range(len(images)) for t in dict.fromkeys(p[b].text for p in proposals)]
        owner = torch.tensor([b for b, _ in pairs])  # (P,)
        labels = [self.alphabet.encode(t) for _, t in pairs]
        scores = torch.zeros(len(pairs), dtype=torch.float64)  # (P,) summed log P_m(text | x)
        for lp, lengths in per_member:
            scores += torch.tensor(string_log_posteriors(lp[owner], lengths[owner], labels))  # lp[owner]: (P, T, C)
        out = []
        for b in range(len(images)):
            mine = (owner == b).nonzero().flatten()  # (K,) in members' order
            k = int(mine[scores[mine].argmax()])
            out.append(self._decoded(pairs[k][1], labels[k], float(scores[k]), lead_lp[b, : int(lead_len[b])]))
        return out

    def _decoded(self, text: str, labels: list[int], log_score: float, lead_lp: torch.Tensor) -> Decoded:
        """The winner as the lead reads it: its frames, digit confidences and the committee's
        confidence (geometric mean of the members' posteriors). ``lead_lp``: (T, C)."""
        if not text:
            return Decoded("", EMPTY_CONFIDENCE, (), ())
        spans = align_spans(lead_lp, labels)
        probs = lead_lp.exp()  # (T, C)
        char_conf = tuple(float(probs[s:e, k].max()) for k, (s, e) in zip(labels, spans))
        confidence = math.exp(log_score / len(self.members)) if math.isfinite(log_score) else 0.0
        return Decoded(text, confidence, char_conf, spans)

    def item_logits(self, greys: Sequence[np.ndarray], batch_size: int = 64) -> list[torch.Tensor]:
        raise ValueError("a committee has no logits of its own: name one model here (calibrate or box with each member alone)")

    def threshold(self, max_error: float) -> float:
        raise ValueError(
            f"committee {self.name!r} has no fitted operating point; amounts and accept/review "
            "decisions need one model with its calibration"
        )
