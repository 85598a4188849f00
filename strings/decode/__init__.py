"""Decoding: network log-probabilities to strings (greedy and torchaudio beam search, forced
alignment), the amount language model, and the candidate confidence measures."""

from __future__ import annotations

from strings.decode.confidence import MEASURES, measure_values, string_posteriors
from strings.decode.ctc import BeamSearchDecoder, Decoded, greedy_decode

__all__ = ["MEASURES", "BeamSearchDecoder", "Decoded", "greedy_decode", "measure_values", "string_posteriors"]
