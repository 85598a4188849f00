"""CTC decoding, kept outside the model so that it can be tested on hand-built log-probabilities.

Confidence, defined once for the whole project:
- a digit's confidence is the highest probability the model gives that digit on any frame
  of the span that emits it;
- a string's confidence is the probability of the single best frame path (the product over
  all frames, blanks included, of the winning class probability); for beam search it is
  ``exp(score)`` of the hypothesis. An empty reading has the blank path's probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from strings.alphabet import BLANK, Alphabet

__all__ = ["Decoded", "greedy_decode", "BeamSearchDecoder"]


@dataclass(frozen=True)
class Decoded:
    """One decoded string: symbols, per-symbol confidence and frame span [start, end)."""

    text: str
    confidence: float
    char_confidences: tuple[float, ...]
    spans: tuple[tuple[int, int], ...]


def greedy_decode(log_probs: Tensor, lengths: Tensor, alphabet: Alphabet) -> list[Decoded]:
    """Best-path decoding: argmax per frame, merge repeats, drop blanks.

    Args:
        log_probs: (B, T, C) log-softmax outputs.
        lengths: (B,) valid frames per item (frames past it are padding).
    """
    probs = log_probs.detach().float().exp().cpu()  # (B, T, C)
    best_p, best = probs.max(dim=-1)  # (B, T), (B, T)
    results = []
    for b in range(probs.shape[0]):
        t_len = int(lengths[b])
        path = best[b, :t_len].tolist()
        path_p = best_p[b, :t_len]
        conf = float(torch.exp(torch.log(path_p.clamp_min(1e-30)).sum())) if t_len else 0.0
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
        results.append(Decoded(alphabet.decode(chars), conf, char_conf, tuple(spans)))
    return results


class BeamSearchDecoder:
    """CTC prefix beam search through torchaudio's flashlight decoder, with N-best output.

    No lexicon and no language model by default: every digit sequence is allowed.
    """

    def __init__(self, alphabet: Alphabet, beam_size: int = 10, nbest: int = 1) -> None:
        from torchaudio.models.decoder import ctc_decoder

        self.alphabet = alphabet
        blank_token = "<blank>"
        tokens = [blank_token, *alphabet.symbols]
        # The decoder wants a word-separator token; digit strings have none, so the blank serves.
        self._decoder = ctc_decoder(
            lexicon=None,
            tokens=tokens,
            lm=None,
            nbest=nbest,
            beam_size=beam_size,
            blank_token=blank_token,
            sil_token=blank_token,
            log_add=True,
        )

    def __call__(self, log_probs: Tensor, lengths: Tensor) -> list[list[Decoded]]:
        """(B, T, C) log-probs and (B,) lengths -> for each item, its N best readings."""
        lp = log_probs.detach().float().cpu().contiguous()
        probs = lp.exp()
        hyps = self._decoder(lp, lengths.to(torch.int32).cpu())
        out = []
        for b, item in enumerate(hyps):
            t_len = int(lengths[b])
            readings = []
            for h in item:
                toks, steps = h.tokens.tolist(), h.timesteps.tolist()
                # flashlight's timesteps count a leading silence frame: shift back by one.
                keep = [(k, min(max(int(t) - 1, 0), max(t_len - 1, 0))) for k, t in zip(toks, steps) if k != BLANK]
                chars = [k for k, _ in keep]
                spans = tuple((t, t + 1) for _, t in keep)
                char_conf = tuple(float(probs[b, t, k]) for k, t in keep)
                readings.append(Decoded(self.alphabet.decode(chars), float(torch.tensor(h.score).exp()), char_conf, spans))
            out.append(readings)
        return out
