"""The one path from an image to a decoded string: preprocessing + model + decoder.

Example:
    >>> import strings
    >>> rec = strings.load()                      # the bundled default model
    >>> reading = rec.recognize("cheque.png")     # doctest: +SKIP
    >>> reading.text, reading.confidence          # doctest: +SKIP
    ('1500', 0.97)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from strings.alphabet import Alphabet
from strings.checkpoint import CheckpointError, load_model, sha256_file
from strings.config import PreprocessConfig
from strings.decoding import BeamSearchDecoder, Decoded, greedy_decode
from strings.models import DenseNetCTC
from strings.transforms import ImageInput, collate_images, load_image, normalize

__all__ = ["BUNDLED_MODELS", "DigitReading", "Reading", "Recognizer", "list_models", "load", "resolve_model"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def _bundled() -> dict[str, tuple[str, str]]:
    """Bundled model name -> (file in strings/weights, sha256), from weights/manifest.json.
    The hash is checked on every load: a bundled file is trusted only if it is the one shipped."""
    manifest = WEIGHTS_DIR / "manifest.json"
    if not manifest.is_file():
        return {}
    entries = json.loads(manifest.read_text(encoding="utf-8"))
    return {name: (e["file"], e["sha256"]) for name, e in entries.items()}


BUNDLED_MODELS: dict[str, tuple[str, str]] = _bundled()


@dataclass(frozen=True)
class DigitReading:
    char: str
    confidence: float
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in the original image's pixels


@dataclass(frozen=True)
class Reading:
    """What the recognizer read in one image (confidences as defined in strings.decoding)."""

    text: str
    confidence: float
    digits: tuple[DigitReading, ...]
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["digits"] = [{**x, "box": list(x["box"])} for x in d["digits"]]
        return d


def list_models() -> list[str]:
    """Names accepted by ``load``."""
    return sorted(BUNDLED_MODELS)


def resolve_model(name_or_path: str | os.PathLike | None) -> Path:
    """A bundled model name (default: ``"default"``) or a path to a ``.safetensors`` file."""
    name = "default" if name_or_path is None else name_or_path
    if isinstance(name, str) and name in BUNDLED_MODELS:
        fname, digest = BUNDLED_MODELS[name]
        path = WEIGHTS_DIR / fname
        if not path.is_file():
            raise FileNotFoundError(f"bundled model {name!r} is missing from the install: {path}")
        actual = sha256_file(path)
        if actual != digest:
            raise CheckpointError(f"bundled model {name!r} failed its sha256 check ({actual} != {digest})")
        return path
    path = Path(name)
    if not path.is_file():
        known = ", ".join(list_models()) or "none bundled"
        raise FileNotFoundError(f"no model file {path} and no bundled model of that name (bundled: {known})")
    return path


class Recognizer:
    """Preprocessing, network and CTC decoder bundled; inference only.

    One instance may serve several threads at once: it holds no per-call state.
    """

    def __init__(
        self,
        model: DenseNetCTC,
        preprocess: PreprocessConfig,
        metadata: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        beam_size: int = 0,
    ) -> None:
        self.model = model.to(device).eval()
        self.preprocess = preprocess
        self.metadata = metadata or {}
        self.device = torch.device(device)
        self.alphabet = Alphabet(model.cfg.alphabet)
        self.beam = BeamSearchDecoder(self.alphabet, beam_size=beam_size) if beam_size > 0 else None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "unnamed"))

    def _decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Decoded]:
        if self.beam is not None:
            return [hyps[0] for hyps in self.beam(log_probs, lengths)]
        return greedy_decode(log_probs, lengths, self.alphabet)

    @torch.inference_mode()
    def _read_normalized(self, images: list[np.ndarray]) -> list[Decoded]:
        batch, widths = collate_images(images, self.model.stride)  # (B, 1, H, W), (B,)
        log_probs = self.model(batch.to(self.device), widths)  # (B, T, C)
        return self._decode(log_probs, self.model.output_lengths(widths))

    def _reading(self, dec: Decoded, shape: tuple[int, int], width: int, source: str) -> Reading:
        h0, w0 = shape
        scale = w0 / width  # original pixels per normalised pixel
        stride = self.model.stride
        digits = tuple(
            DigitReading(
                ch,
                conf,
                (int(s * stride * scale), 0, min(w0, int(round(e * stride * scale))), h0),
            )
            for ch, conf, (s, e) in zip(dec.text, dec.char_confidences, dec.spans)
        )
        return Reading(dec.text, dec.confidence, digits, source)

    def recognize(self, image: ImageInput) -> Reading:
        """Read one image: a path, a numpy array (grey or 3-channel) or a PIL image."""
        return self.recognize_batch([image])[0]

    def recognize_batch(self, images: Iterable[ImageInput], batch_size: int = 64) -> list[Reading]:
        """Read many images; similar widths are batched together to limit padding.

        Raises on the first unreadable item (use ``recognize_many`` to keep going past them).
        """
        items = list(images)
        greys = [load_image(x) for x in items]
        return self.recognize_greys(greys, [_source(x) for x in items], batch_size)

    def recognize_greys(self, greys: Sequence[np.ndarray], sources: Sequence[str], batch_size: int = 64) -> list[Reading]:
        """Read already-loaded grey uint8 images (dark ink on light paper)."""
        normed = [normalize(g, self.preprocess) for g in greys]
        order = sorted(range(len(normed)), key=lambda i: normed[i].shape[1])
        out: list[Reading | None] = [None] * len(normed)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            for i, dec in zip(idx, self._read_normalized([normed[i] for i in idx])):
                out[i] = self._reading(dec, greys[i].shape, normed[i].shape[1], sources[i])
        return out  # type: ignore[return-value]


def _source(item: ImageInput) -> str:
    return str(item) if isinstance(item, (str, os.PathLike)) else ""


def load(
    name_or_path: str | os.PathLike | None = None, device: str = "cpu", beam_size: int = 0
) -> Recognizer:
    """Load a recognizer: the bundled default model, another bundled name, or a file path.

    ``beam_size > 0`` decodes with CTC beam search instead of the greedy best path.
    """
    path = resolve_model(name_or_path)
    model, pre, meta, _ = load_model(path)
    meta = {**meta, "path": str(path)}
    meta.setdefault("name", str(name_or_path or "default"))
    return Recognizer(model, pre, meta, device=device, beam_size=beam_size)
