"""The synthetic digit-string generator: cheque-amount strings composed from isolated real digits.

Why this exists: only ~1,000 real courtesy-amount strings are available for training, far too few
for a CTC recogniser to learn writer variation, spacing and the clutter around amounts. Isolated
digits are plentiful (MNIST, USPS, and the digits cut out of the real cheque training images by
their COCO boxes), so we compose strings from them and make the composition look like the real
crops: amount-like labels, touching and overlapping digits, slant, thin pen strokes, cheque paper
with security patterns, separators and dashes that are *not* transcribed, and scanner/JPEG damage.

Every knob lives in :class:`SynthConfig`; ``SynthStrings(...)[i]`` is a pure function of
``(seed, i)`` so data loaders in several worker processes agree without coordination.

Example:
    >>> from strings.data.synth import GlyphBank, Backgrounds, SynthStrings
    >>> bank = GlyphBank.from_data("../shared/data")  # doctest: +SKIP
    >>> ds = SynthStrings(bank, Backgrounds.from_data("../shared/data"), n=100_000, seed=1)  # doctest: +SKIP
    >>> ds[0].label, ds[0].image.shape  # doctest: +SKIP

Split by concern: ``common`` (SynthConfig and shared helpers), ``glyphs`` (the digit bank),
``paper`` (backgrounds), ``compose`` (labels and layout), ``damage`` (scanner and JPEG),
``write`` (sets on disk, the realism sheet), ``scripts`` (other scripts' numerals), ``comb``
(numbers written one digit per printed box, photographed), ``photo`` (phone photos of strings).
"""

from __future__ import annotations

from strings.data.synth.comb import CombConfig, CombFields, comb_fields
from strings.data.synth.common import DEFAULT_SOURCES, SynthConfig, stroke_widths
from strings.data.synth.compose import SynthStrings, sample_label
from strings.data.synth.glyphs import Glyph, GlyphBank
from strings.data.synth.paper import Backgrounds
from strings.data.synth.photo import PhotoConfig, PhotoStrings, photo_strings
from strings.data.synth.scripts import script_glyph_bank, script_strings
from strings.data.synth.write import mnist_test_strings, realism_sheet, write_synth

__all__ = [
    "DEFAULT_SOURCES", "Backgrounds", "CombConfig", "CombFields", "comb_fields", "Glyph", "GlyphBank", "PhotoConfig", "PhotoStrings",
    "SynthConfig", "SynthStrings", "mnist_test_strings", "photo_strings",
    "realism_sheet", "sample_label", "script_glyph_bank", "script_strings", "stroke_widths", "write_synth",
]
