"""CTC decoding, kept outside the model so that it can be tested on hand-built log-probabilities.

Confidence, defined once for the whole project:
- a digit's confidence is the highest probability the model gives that digit on any frame
  of the span that emits it;
- a string's confidence, as decoded here, is the probability of the single best frame path
  (the product over all frames, blanks included, of the winning class probability); for beam
  search it is ``exp(score)`` of the hypothesis. A calibrated model replaces it with the
  measure its calibration chose (``strings.decode.confidence``, ``strings.read.calibration``;
  which one a model file uses is in its metadata: ``strings models``);
- an empty reading has confidence ``EMPTY_CONFIDENCE`` (0) under every measure: a blank field,
  flat paper and noise all decode to nothing with a near-certain blank path, and a reader that
  ranks by confidence must never accept "nothing read" before a real reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from strings.alphabet import BLANK, Alphabet

if TYPE_CHECKING:
    from strings.decode.amount_lm import AmountNgram

__all__ = ["EMPTY_CONFIDENCE", "BeamSearchDecoder", "Decoded", "align_spans", "forced_reading", "greedy_decode", "merge_marks"]

EMPTY_CONFIDENCE = 0.0  # the confidence of an empty reading, whatever the measure (see above)


@dataclass(frozen=True)
class Decoded:
    """One decoded string: symbols, per-symbol confidence and frame span [start, end)."""

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    spans: tuple[tuple[int, int], ...]


def merge_marks(log_probs: Tensor, unknown: Tensor, marks: list[int]) -> Tensor:
    """For the items flagged ``unknown``, count a mark as a blank: the blank column becomes
    logsumexp(blank, marks), so writing a separator there costs nothing and the digits alone
    are scored. Training uses it for labels that do not transcribe the marks; a committee, to
    score a digits-only proposal under a model that reads separators.

    Args:
        log_probs: (B, T, C) log-probabilities.
        unknown: (B,) bool, True where the label is digits only.
        marks: class indices of the marks.
    """
    if not marks or not bool(unknown.any()):
        return log_probs
    merged = torch.logsumexp(log_probs[:, :, [BLANK, *marks]], dim=-1)  # (B, T)
    blank = torch.where(unknown.to(log_probs.device)[:, None], merged, log_probs[:, :, BLANK])  # (B, T)
    return torch.cat([blank[:, :, None], log_probs[:, :, 1:]], dim=-1)  # (B, T, C)


def greedy_decode(log_probs: Tensor, lengths: Tensor, alphabet: Alphabet) -> list[Decoded]:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks.

    Args:
        log_probs: (B, T, C) log-softmax outputs.
        lengths: (B,) valid frames per item (frames past it are padding).
    """
    lp = log_probs.detach().cpu()
    if lp.dtype != torch.float64:
        lp = lp.float()
    best_lp, best = lp.max(dim=-1)  # (B, T), (B, T)
    probs = lp.exp().numpy()  # (B, T, C); numpy: the per-symbol maxima below are many tiny reductions
    path_lp = best_lp.numpy()  # (B, T)
    results = []
    for b in range(lp.shape[0]):
        t_len = int(lengths[b])
        path = best[b, :t_len].tolist()
        conf = float(math.exp(path_lp[b, :t_len].sum())) if t_len else 0.0
        chars: list[int] = []
        spans: list[tuple[int, int]] = []
        prev = BLANK
        for t, k in enumerate(path):
            if k != BLANK and k != prev:
                chars.append(k)
                spans.append((t, t + 1))
            elif k != BLANK and k == prev:
                spans[-1] = (spans[-1][0], t + 1)
            prev = k
        char_conf = tuple(float(probs[b, s:e, k].max()) for k, (s, e) in zip(chars, spans))
        results.append(Decoded(alphabet.decode(chars), conf if chars else EMPTY_CONFIDENCE, char_conf, tuple(spans)))
    return results


def forced_reading(log_probs: Tensor, labels: list[int], text: str, confidence: float) -> Decoded:
    """``text`` (whose classes are ``labels``) read off (T, C) log-probs it did not necessarily win:
    its frames by forced alignment, each symbol's confidence the highest probability of its
    class over its frames, and the given ``confidence`` (a committee's, a column's)."""
    spans = align_spans(log_probs, labels)
    probs = log_probs.exp()  # (T, C)
    char_conf = tuple(float(probs[s:e, k].max()) for k, (s, e) in zip(labels, spans))
    return Decoded(text, confidence, char_conf, spans)


def align_spans(log_probs: Tensor, labels: list[int]) -> tuple[tuple[int, int], ...]:
    """Frame span [start, end) of each label on the best CTC path that spells ``labels``
    (torchaudio's forced alignment). ``log_probs`` is (T, C) for one item."""
    if not labels:
        return ()
    from torchaudio.functional import forced_align, merge_tokens

    targets = torch.tensor([labels], dtype=torch.int32)  # (1, L)
    path, scores = forced_align(log_probs[None].float(), targets, blank=BLANK)  # (1, T), (1, T)
    spans = merge_tokens(path[0], scores[0].exp(), blank=BLANK)
    return tuple((int(sp.start), int(sp.end)) for sp in spans)


class BeamSearchDecoder:
    """CTC prefix beam search through torchaudio's flashlight decoder, with N-best output.

    No lexicon; every digit sequence is allowed. ``lm`` adds a prior over strings (see
    ``strings.decode.amount_lm``) weighted by ``lm_weight``, with ``insertion_bonus`` per emitted digit
    to offset the prior's pull towards short strings. With an ``lm`` a decoder instance must not
    be shared between threads (the LM keeps per-call state). Digit spans come from forced
    alignment of each hypothesis, so they mean the same as greedy spans.
    """

    def __init__(
        self, alphabet: Alphabet, beam_size: int = 10, nbest: int = 1, lm: AmountNgram | None = None,
        lm_weight: float = 0.0, insertion_bonus: float = 0.0,
    ) -> None:
        from torchaudio.models.decoder import ctc_decoder

        from strings.decode.amount_lm import DecoderLM

        if lm is not None and lm.symbols != alphabet.symbols:
            raise ValueError(f"LM symbols {lm.symbols!r} differ from the alphabet {alphabet.symbols!r}")
        self.alphabet = alphabet
        blank_token = "<blank>"
        tokens = [blank_token, *alphabet.symbols]
        # The decoder wants a word-separator token; digit strings have none, so the blank serves.
        self._decoder = ctc_decoder(
            lexicon=None,
            tokens=tokens,
            lm=DecoderLM(lm) if lm is not None else None,
            nbest=nbest,
            beam_size=beam_size,
            lm_weight=lm_weight if lm is not None else 0.0,
            word_score=insertion_bonus,
            blank_token=blank_token,
            sil_token=blank_token,
            log_add=True,
        )

    def __call__(self, log_probs: Tensor, lengths: Tensor) -> list[list[Decoded]]:
        """(B, T, C) log-probs and (B,) lengths -> for each item, its N best readings."""
        lp = log_probs.detach().float().cpu().contiguous()  # the flashlight decoder takes float32
        probs = log_probs.detach().cpu().exp()
        hyps = self._decoder(lp, lengths.to(torch.int32).cpu())
        out = []
        for b, item in enumerate(hyps):
            t_len = int(lengths[b])
            readings = []
            for h in item:
                chars = [k for k in h.tokens.tolist() if k != BLANK]
                spans = align_spans(lp[b, :t_len], chars)
                char_conf = tuple(float(probs[b, s:e, k].max()) for k, (s, e) in zip(chars, spans))
                conf = min(1.0, math.exp(h.score)) if chars else EMPTY_CONFIDENCE
                readings.append(Decoded(self.alphabet.decode(chars), conf, char_conf, spans))
            out.append(readings)
        return out
