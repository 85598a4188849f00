"""The one path from an image to a decoded string: preprocessing + model + decoder.

Example:
    >>> import strings
    >>> rec = strings.load()                      # the bundled default model
    >>> reading = rec.recognize("cheque.png")     # doctest: +SKIP
    >>> reading.text, reading.confidence          # doctest: +SKIP
    ('1500', 0.97)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from strings.alphabet import AMOUNT_MARKS, SEPARATORS, Alphabet
from strings.read.backends import Backend, in_lanes, make_backend
from strings.read.batching import width_batches
from strings.read.amount import DEFAULT_LOCALE, Amount, AmountReading, decide, format_amount, review_reasons
from strings.read.boxes import digit_boxes
from strings.read.calibration import Calibration, measure_values
from strings.models.checkpoint import CheckpointError, load_model, sha256_file
from strings.config import PreprocessConfig
from strings.decode.ctc import EMPTY_CONFIDENCE, BeamSearchDecoder, Decoded, greedy_decode
from strings.read.field import FieldReading, read_fields
from strings.config import ColumnConfig, FieldConfig
from strings.models import DenseNetCTC
from strings.image import ImageInput, InvalidImageError, collate_images, load_image, prepare

__all__ = [
    "Amount", "AmountReading", "bundled_models", "DigitReading", "FieldReading", "ItemError", "Reading", "Recognizer", "list_models", "load_one", "resolve_model",
]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"  # strings/weights


@functools.cache
def _bundled() -> dict[str, tuple[str, str]]:
    """Bundled model name -> (file in strings/weights, sha256), from weights/manifest.json.
    The hash is checked on every load: a bundled file is trusted only if it is the one shipped."""
    manifest = WEIGHTS_DIR / "manifest.json"
    if not manifest.is_file():
        return {}
    entries = json.loads(manifest.read_text(encoding="utf-8"))
    return {name: (e["file"], e["sha256"]) for name, e in entries.items()}




@dataclass(frozen=True)
class DigitReading:
    char: str
    confidence: float
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) in the original image's pixels


@dataclass(frozen=True)
class Reading:
    """What the recognizer read in one image (confidences as defined in strings.decode.ctc)."""

    text: str  # the digits read (the ORAND protocol string)
    confidence: float
    digits: tuple[DigitReading, ...]
    source: str = ""
    written: str = ""  # as written, with the separators an amount model reads ("1.500,00"); else the digits

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["digits"] = [{**x, "box": list(x["box"])} for x in d["digits"]]
        return d


@dataclass(frozen=True)
class ItemError:
    """An item of ``Recognizer.recognize_many`` that could not be read: ``source`` is its path
    (``"[i]"``, its index, for an in-memory item) and ``error`` the message of the
    ``InvalidImageError`` / ``FileNotFoundError`` it raised, which names the item."""

    source: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bundled_models() -> dict[str, tuple[str, str]]:
    """Bundled model name -> (file in strings/weights, sha256), read once from the manifest."""
    return dict(_bundled())


def list_models() -> list[str]:
    """Names accepted by ``load``."""
    return sorted(_bundled())


def resolve_model(name_or_path: str | os.PathLike | None) -> Path:
    """A bundled model name (default: ``"default"``) or a path to a ``.safetensors`` file."""
    name = "default" if name_or_path is None else name_or_path
    if isinstance(name, str) and name in _bundled():
        fname, digest = _bundled()[name]
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
        calibration: Calibration | None = None,
        backend: str | Backend = "torch",
        threads: int | None = None,
    ) -> None:
        self.model = model.to(device).eval()
        # The network runs in a backend (strings.read.backends): folded PyTorch or ONNX Runtime.
        self.backend = make_backend(backend, self.model, preprocess, metadata, device=device, threads=threads)
        self.preprocess = preprocess
        self.metadata = metadata or {}
        if calibration is None and "calibration" in self.metadata:
            calibration = Calibration.from_dict(self.metadata["calibration"])
        self.calibration = calibration
        self.device = torch.device(device)
        self.alphabet = Alphabet(model.cfg.alphabet)
        self.beam = BeamSearchDecoder(self.alphabet, beam_size=beam_size) if beam_size > 0 else None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "unnamed"))

    @property
    def lanes(self) -> int:
        """Width batches read at once (``strings.read.backends.in_lanes``): the backend's say,
        and one where a beam decodes (the flashlight decoder keeps its search in the object)."""
        return 1 if self.beam is not None else int(getattr(self.backend, "lanes", 1))

    def _decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[Decoded]:
        if self.beam is not None:
            decoded = [hyps[0] for hyps in self.beam(log_probs, lengths)]
        else:
            decoded = greedy_decode(log_probs, lengths, self.alphabet)
        if self.calibration is None:
            return decoded
        conf = measure_values(self.calibration.measure, log_probs, lengths, decoded, self.alphabet)
        return [dataclasses.replace(d, confidence=c) for d, c in zip(decoded, conf)]

    @torch.inference_mode()
    def _logits(self, images: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised images -> (B, T, C) logits and (B,) valid frames per item."""
        batch, widths = collate_images(images, self.model.stride)  # (B, 1, H, W), (B,)
        logits = self.backend.logits(batch, widths)  # (B, T, C)
        return logits, self.model.output_lengths(widths)

    def _read_normalized(self, images: list[np.ndarray]) -> list[Decoded]:
        logits, lengths = self._logits(images)
        t = self.calibration.temperature if self.calibration is not None else 1.0
        log_probs = (logits.double() / t).log_softmax(-1)  # float64: see DenseNetCTC.logits
        return self._decode(log_probs, lengths)

    def item_logits(self, greys: Sequence[np.ndarray], batch_size: int = 64) -> list[torch.Tensor]:
        """Each image's (T_i, C) logits, uncalibrated: what ``strings calibrate`` fits on."""
        normed = [prepare(g, self.preprocess)[0] for g in greys]
        out: list[torch.Tensor | None] = [None] * len(normed)
        for idx in width_batches([n.shape[1] for n in normed], batch_size, self.model.stride):  # as recognize_greys
            logits, lengths = self._logits([normed[i] for i in idx])
            for b, i in enumerate(idx):
                out[i] = logits[b, : int(lengths[b])].cpu().double()
        return out  # type: ignore[return-value]

    def _reading(self, dec: Decoded, crop: tuple[int, int, int, int], ink: np.ndarray, source: str) -> Reading:
        """``crop``: the (x0, y0, x1, y1) part of the image that became ``ink``."""
        x0, y0, x1, y1 = crop
        boxes = [
            (bx0 + x0, by0 + y0, bx1 + x0, by1 + y0)
            for bx0, by0, bx1, by1 in digit_boxes(ink, dec.spans, self.model.stride, (y1 - y0, x1 - x0))
        ]
        symbols = zip(dec.text, dec.char_confidences, boxes)
        digits = tuple(DigitReading(ch, conf, box) for ch, conf, box in symbols if ch not in AMOUNT_MARKS)
        return Reading("".join(d.char for d in digits), dec.confidence, digits, source, dec.text)

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

    def recognize_greys(
        self, greys: Sequence[np.ndarray], sources: Sequence[str] | None = None, batch_size: int = 64
    ) -> list[Reading]:
        """Read already-loaded grey uint8 images (dark ink on light paper)."""
        sources = sources if sources is not None else [""] * len(greys)
        prepared = [prepare(g, self.preprocess) for g in greys]
        normed = [ink for ink, _ in prepared]

        def read(idx: list[int]) -> list[Reading]:
            decoded = self._read_normalized([normed[i] for i in idx])
            return [self._reading(dec, prepared[i][1], normed[i], sources[i]) for i, dec in zip(idx, decoded)]

        out: list[Reading | None] = [None] * len(normed)
        # Width bucketing (strings.read.batching): narrowest first, batches closed before padding
        # grows; several batches are read at once on single-threaded lanes (strings.read.backends).
        batches = width_batches([n.shape[1] for n in normed], batch_size, self.model.stride)
        for idx, readings in zip(batches, in_lanes(read, batches, self.lanes)):
            for i, reading in zip(idx, readings):
                out[i] = reading
        return out  # type: ignore[return-value]

    def empty_reading(self, source: str = "") -> Reading:
        """What is returned where nothing was read: no digits, confidence ``EMPTY_CONFIDENCE``."""
        return Reading("", EMPTY_CONFIDENCE, (), source, "")

    def read_field(self, image: ImageInput, field: FieldConfig | None = None) -> FieldReading:
        """Find the handwritten string in a loose crop (a register cell, a form box cut by
        fixed coordinates) and read it; see ``strings.read.field``.

        Example:
            >>> f = strings.load("field").read_field("cell.jpg")  # doctest: +SKIP
            >>> f.text, f.box, f.reading.digits[0].box  # doctest: +SKIP
            ('23', (41, 60, 97, 95), (44, 62, 69, 93))
        """
        return self.read_fields([image], field=field)[0]

    def read_fields(self, images: Iterable[ImageInput], field: FieldConfig | None = None, batch_size: int = 64) -> list[FieldReading]:
        """``read_field`` for many crops; their candidates share the network's batches."""
        items = list(images)
        greys = [load_image(x) for x in items]
        return read_fields(self, greys, [_source(x) for x in items], field or self.field_config, batch_size)

    def read_column(
        self, images: Iterable[ImageInput], field: FieldConfig | None = None, column: ColumnConfig | None = None,
        batch_size: int = 64,
    ) -> list[FieldReading]:
        """The rows of one register column, top to bottom, read as field crops whose row numbers
        run on: each row's number weighed against its neighbours' (``strings.read.column``)."""
        from strings.read.column import read_column

        items = list(images)
        greys = [load_image(x) for x in items]
        return read_column(self, greys, [_source(x) for x in items], field or self.field_config, column, batch_size)

    @property
    def field_config(self) -> FieldConfig:
        """How this model searches loose crops: its metadata's ``field`` record, else the defaults."""
        from strings.config import from_dict

        return from_dict(FieldConfig, self.metadata["field"]) if "field" in self.metadata else FieldConfig()

    def threshold(self, max_error: float) -> float:
        """The lowest confidence to accept at ``max_error`` (from the model's calibration)."""
        if self.calibration is None:
            raise ValueError(
                f"model {self.name!r} has no calibration, so no operating point can be set; run "
                "`strings calibrate --model MODEL --out CALIBRATED.safetensors` first"
            )
        return self.calibration.threshold(max_error)

    def operating_point(self, max_error: float) -> float | None:
        """The lowest confidence to accept at ``max_error``; ``None`` where the reader has no
        fitted operating point (uncalibrated), so that a person checks everything it reads."""
        return None if self.calibration is None else self.calibration.threshold(max_error)

    def amount(self, reading: Reading, max_error: float = 0.01, decimals: int = 0) -> AmountReading:
        """A reading as a cheque amount, with ``needs_review`` set where accepting it would
        exceed ``max_error`` (judged on the model's validation split) or where it is no amount."""
        threshold = self.threshold(max_error)
        reasons = review_reasons(reading.text, reading.confidence, threshold)
        amount = format_amount(reading.text, decimals) if reading.text.isdigit() else ""
        return AmountReading(reading.text, amount, reading.confidence, bool(reasons), tuple(reasons), max_error, threshold)

    @property
    def reads_separators(self) -> bool:
        """Whether the model's alphabet has the marks written between digits (``.`` ``,``)."""
        return any(c in SEPARATORS for c in self.alphabet.symbols)

    def amount_of(self, reading: Reading, max_error: float = 0.01, *, locale: str = DEFAULT_LOCALE) -> Amount:
        """A reading as a cheque amount: its value under ``locale`` and ``accept`` or ``review``
        at the threshold that kept the validation error at ``max_error`` (strings.read.amount);
        an uncalibrated reader sends every amount to review (``NO_OPERATING_POINT``)."""
        written = reading.written or reading.text
        threshold = self.operating_point(max_error)
        return decide(written, reading.confidence, threshold, max_error, locale, self.reads_separators)

    def read_amount(self, image: ImageInput, max_error: float = 0.01, *, locale: str = DEFAULT_LOCALE) -> Amount:
        """Read one cheque's courtesy amount; see ``amount_of``.

        Example:
            >>> a = strings.load().read_amount("cheque.png", locale="es-UY")  # doctest: +SKIP
            >>> a.written, a.value, a.minor_units, a.status  # doctest: +SKIP
            ('1.500,00', Decimal('1500.00'), 150000, 'accept')
        """
        return self.amount_of(self.recognize(image), max_error, locale=locale)

    # recognize_many reads its items in chunks: at most this many items, or this many pixels
    # of decoded images, are held at once (the widths of a chunk are sorted to limit padding).
    _CHUNK_BATCHES = 4
    _CHUNK_PIXELS = 64_000_000

    def recognize_many(self, items: Iterable[ImageInput], batch_size: int = 64) -> list[Reading | ItemError]:
        """Read many images, going on past the ones that cannot be read.

        Returns one result per item, in order: a ``Reading``, or an ``ItemError`` for an item
        that ``load_image`` refused (missing file, corrupt or unsupported image, bad array).
        ``items`` may be a generator; decoded images are held a chunk at a time.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        out: list[Reading | ItemError | None] = []
        chunk: list[tuple[int, np.ndarray, str]] = []
        pixels = 0

        def flush() -> None:
            if not chunk:
                return
            greys, sources = [g for _, g, _ in chunk], [s for _, _, s in chunk]
            try:
                readings: list[Reading | ItemError] = list(self.recognize_greys(greys, sources, batch_size))
            except InvalidImageError:  # should not happen after load_image; find the item, keep the rest
                readings = []
                for (i, g, s) in chunk:
                    try:
                        readings.append(self.recognize_greys([g], [s], 1)[0])
                    except InvalidImageError as exc:
                        readings.append(ItemError(s or f"[{i}]", str(exc)))
            for (i, _, _), r in zip(chunk, readings):
                out[i] = r
            chunk.clear()

        for i, item in enumerate(items):
            source = _source(item)
            try:
                grey = load_image(item)
            except (InvalidImageError, OSError, MemoryError) as exc:  # OSError includes FileNotFoundError
                msg = str(exc) if not isinstance(exc, MemoryError) else "out of memory while loading"
                out.append(ItemError(source or f"[{i}]", msg))
                continue
            out.append(None)
            chunk.append((i, grey, source))
            pixels += grey.size
            if len(chunk) >= batch_size * self._CHUNK_BATCHES or pixels >= self._CHUNK_PIXELS:
                flush()
                pixels = 0
        flush()
        return out  # type: ignore[return-value]


def _source(item: ImageInput) -> str:
    return str(item) if isinstance(item, (str, os.PathLike)) else ""


def load_one(
    name_or_path: str | os.PathLike | None = None, device: str = "cpu", beam_size: int = 0,
    backend: str = "torch", threads: int | None = None,
) -> Recognizer:
    """One model's recognizer: the bundled default, another bundled name, or a file path (the
    keywords as ``strings.read.loading.load``, which also builds committees)."""
    path = resolve_model(name_or_path)
    model, pre, meta, _ = load_model(path)
    meta = {**meta, "path": str(path)}
    meta.setdefault("name", str(name_or_path or "default"))
    try:
        calibration = Calibration.from_dict(meta["calibration"]) if "calibration" in meta else None
    except ValueError as exc:
        raise CheckpointError(f"{path}: bad calibration metadata ({exc})") from None
    return Recognizer(
        model, pre, meta, device=device, beam_size=beam_size, calibration=calibration, backend=backend, threads=threads
    )
