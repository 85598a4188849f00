"""The candidate string confidences, each computed from the network's log-probabilities and
the decoded reading (the calibration in strings.read.calibration chooses among them):

- ``path``: probability of the single best frame path (blanks included);
- ``posterior``: probability of the decoded *string*, summed over every frame path that spells
  it (``exp(-CTC loss)``), so a digit spread over several frames is not penalised;
- ``min_char`` / ``mean_char``: the lowest / mean digit confidence;
- ``margin``: the decoded string's posterior minus that of the best other string from a
  two-best beam search: low when the network hesitates between two readings.
Each measure is computed on log-probabilities at temperature ``T`` (logits / T). Under every
measure an empty reading has confidence ``EMPTY_CONFIDENCE`` (0; see strings.decode.ctc).

A committee (strings.read.committee) reads with several models; its confidences come from each
member's posterior of the committee's digits (a mark reader's marks counted as blanks), as
:func:`committee_confidence` combines them (``COMMITTEE_MEASURES``):

- ``voters``: geometric mean over the members that vote on the digits;
- ``members``: geometric mean over every member, the writer of the marks too: a second opinion
  from a model that did not choose the digits;
- ``weakest``: the lowest member posterior: near 1 only where every member is sure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from strings.alphabet import BLANK, Alphabet
from strings.decode.ctc import EMPTY_CONFIDENCE, BeamSearchDecoder, Decoded

__all__ = [
    "COMMITTEE_MEASURES", "MARGIN_BEAM", "MEASURES", "committee_confidence", "measure_values", "string_log_posteriors",
    "string_posteriors",
]

MEASURES = ("path", "posterior", "min_char", "mean_char", "margin")
COMMITTEE_MEASURES = ("voters", "members", "weakest")
MARGIN_BEAM = 8  # beam width of the two-best search behind the ``margin`` measure


def string_log_posteriors(log_probs: Tensor, lengths: Tensor, labels: Sequence[Sequence[int]]) -> list[float]:
    """log P(string | image) for each item, summed over all CTC paths that spell it
    (``-inf`` where no path of ``lengths`` frames can spell it).

    Args:
        log_probs: (B, T, C) log-softmax outputs (float64 keeps tiny posteriors exact).
        lengths: (B,) valid frames per item.
        labels: per item, the class indices of the string (blank excluded).
    """
    lp = log_probs.detach().cpu().double().transpose(0, 1)  # (T, B, C)
    targets = torch.tensor([k for lab in labels for k in lab], dtype=torch.long)  # (sum L,)
    target_lengths = torch.tensor([len(lab) for lab in labels], dtype=torch.long)  # (B,)
    nll = F.ctc_loss(lp, targets, lengths.cpu().long(), target_lengths, blank=BLANK, reduction="none", zero_infinity=False)
    return [-x if math.isfinite(x) else -math.inf for x in nll.tolist()]  # (B,)


def string_posteriors(log_probs: Tensor, lengths: Tensor, labels: Sequence[Sequence[int]]) -> list[float]:
    """P(string | image) for each item: ``exp`` of :func:`string_log_posteriors`."""
    return [math.exp(x) for x in string_log_posteriors(log_probs, lengths, labels)]


def measure_values(
    measure: str, log_probs: Tensor, lengths: Tensor, decoded: Sequence[Decoded], alphabet: Alphabet
) -> list[float]:
    """The confidence ``measure`` of each decoded reading, from the log-probs it was read from
    (``EMPTY_CONFIDENCE`` for an empty reading)."""
    values = _measure(measure, log_probs, lengths, decoded, alphabet)
    return [v if d.text else EMPTY_CONFIDENCE for v, d in zip(values, decoded)]


def _measure(
    measure: str, log_probs: Tensor, lengths: Tensor, decoded: Sequence[Decoded], alphabet: Alphabet
) -> list[float]:
    if measure == "path":
        lp = log_probs.detach().cpu().double()
        best = lp.max(dim=-1).values  # (B, T)
        return [float(best[b, : int(lengths[b])].sum().exp()) for b in range(lp.shape[0])]
    if measure in ("min_char", "mean_char"):
        agg = min if measure == "min_char" else (lambda xs: sum(xs) / len(xs))
        return [float(agg(d.char_confidences)) if d.char_confidences else EMPTY_CONFIDENCE for d in decoded]
    labels = [alphabet.encode(d.text) for d in decoded]
    post = string_posteriors(log_probs, lengths, labels)
    if measure == "posterior":
        return post
    if measure == "margin":
        beams = BeamSearchDecoder(alphabet, beam_size=MARGIN_BEAM, nbest=2)(log_probs, lengths)
        others = [next((h.text for h in hyps if h.text != d.text), None) for hyps, d in zip(beams, decoded)]
        rival = [alphabet.encode(t) if t is not None else [] for t in others]
        rival_post = string_posteriors(log_probs, lengths, rival)
        return [max(0.0, p - (q if t is not None else 0.0)) for p, q, t in zip(post, rival_post, others)]
    raise ValueError(f"unknown confidence measure {measure!r}; known: {', '.join(MEASURES)}")


def committee_confidence(measure: str, log_posteriors: Sequence[float], voters: Sequence[bool]) -> float:
    """A committee reading's confidence under ``measure`` (``COMMITTEE_MEASURES``), from each
    member's ``log P_m(digits | x)`` and which members vote (True) on the digits."""
    if measure == "voters":
        picked = [lp for lp, v in zip(log_posteriors, voters) if v]
    elif measure in ("members", "weakest"):
        picked = list(log_posteriors)
    else:
        raise ValueError(f"unknown committee confidence {measure!r}; known: {', '.join(COMMITTEE_MEASURES)}")
    if not picked or not all(math.isfinite(lp) for lp in picked):
        return 0.0
    return math.exp(min(picked) if measure == "weakest" else sum(picked) / len(picked))
