"""The predictors, loaded once per process and shared by every request (doctr's ``vision.py``).

The string model loads in a background thread so that ``/healthz`` answers at once and
``/readyz`` turns ready only when the model is loaded and warmed (its first batches are slow).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Sequence

import numpy as np

from strings.digits.classifier import DigitClassifier, list_digit_models, load_digits
from strings.read.committee import Committee
from strings.read.recognizer import Reading, Recognizer
from strings.read.loading import load
from strings.serve.batcher import DynamicBatcher
from strings.serve.config import ServeConfig
from strings.serve.errors import ServeError
from strings.serve.metrics import Metrics

__all__ = ["Service"]

log = logging.getLogger("strings.serve")

# Warm-up: blank strips of these widths, so the first requests do not pay for lazy setup.
WARMUP_WIDTHS = (64, 256)
WARMUP_HEIGHT = 48
PAPER = 255


class Service:
    """The Recognizer (one per beam width, sharing network and backend), the batcher, the
    digit classifiers (loaded on first use), the metrics and a private folder for uploads."""

    def __init__(self, cfg: ServeConfig, recognizer: Recognizer | None = None) -> None:
        self.cfg = cfg
        self.metrics = Metrics()
        self.ready = threading.Event()
        self.load_error: str | None = None
        self.tmp_dir = tempfile.mkdtemp(prefix="strings-serve-")
        self._rec = recognizer
        self._by_beam: dict[int, Recognizer] = {}
        self._digits: dict[str, DigitClassifier] = {}
        self._lock = threading.Lock()
        self.batcher = DynamicBatcher(
            self._read, cfg.max_batch, cfg.max_wait_ms / 1000.0, cfg.workers, on_batch=self.metrics.batch_size.observe
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load and warm the model in the background; ``ready`` is set when done."""
        threading.Thread(target=self._load, name="strings-load", daemon=True).start()

    def _load(self) -> None:
        try:
            if self._rec is None:
                cfg = self.cfg
                self._rec = load(cfg.model, beam_size=cfg.beam, backend=cfg.backend, threads=cfg.threads)
            self._by_beam[self.cfg.beam] = self._rec
            blank = [np.full((WARMUP_HEIGHT, w), PAPER, np.uint8) for w in WARMUP_WIDTHS]
            self._rec.recognize_greys(blank)
            self.batcher.start()
            self.ready.set()
            log.info("model %s loaded and warmed; ready", self._rec.name)
        except Exception as exc:  # reported by /readyz and by every read
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("the model failed to load")

    def close(self) -> None:
        """Finish queued images, stop the workers, remove the upload folder."""
        if self.ready.is_set():
            self.batcher.stop(self.cfg.shutdown_grace_s)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    # ------------------------------------------------------------------ predictors

    @property
    def recognizer(self) -> Recognizer:
        if not self.ready.is_set() or self._rec is None:
            why = f"the model failed to load ({self.load_error})" if self.load_error else "the model is still loading"
            raise ServeError(503, "not_ready", why)
        return self._rec

    def for_beam(self, beam: int) -> Recognizer:
        """The Recognizer decoding with ``beam``: the loaded one's network and backend, another decoder."""
        base = self.recognizer
        if isinstance(base, Committee):  # its members propose best paths; a beam would read the lead alone
            if beam:
                raise ServeError(422, "bad_option", f"option 'beam': committee {base.name!r} reads best paths only (beam 0)", item="beam")
            return base
        with self._lock:
            rec = self._by_beam.get(beam)
            if rec is None:
                rec = Recognizer(
                    base.model,
                    base.preprocess,
                    base.metadata,
                    device=base.device,
                    beam_size=beam,
                    calibration=base.calibration,
                    backend=base.backend,
                )
                self._by_beam[beam] = rec
            return rec

    def _read(self, greys: Sequence[np.ndarray], sources: Sequence[str], beam: int) -> list[Reading]:
        return self.for_beam(beam).recognize_greys(greys, sources, batch_size=self.cfg.max_batch)

    def digit_classifier(self, name: str | None) -> DigitClassifier:
        """A bundled digit model by name (clients never name files on the server)."""
        name = name or self.cfg.digit_model
        known = list_digit_models()
        if name not in known:
            raise ServeError(
                422, "bad_option", f"option 'model': no digit model {name!r} (known: {', '.join(known)})", item="model"
            )
        with self._lock:
            if name not in self._digits:
                self._digits[name] = load_digits(name)
            return self._digits[name]
