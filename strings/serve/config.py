"""The service's settings, one frozen dataclass: every limit a client can run into is here."""

from __future__ import annotations

from dataclasses import dataclass, fields

from strings.image import MAX_PIXELS

__all__ = ["ServeConfig"]


@dataclass(frozen=True)
class ServeConfig:
    """How ``strings serve`` runs. The CLI flags map one to one onto these fields.

    Limits are checked before work is done: the body size while it is received, the image
    count before any image is decoded, the pixels of each image from its header.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    model: str | None = None  # a bundled name or a .safetensors path; None: the bundled default
    beam: int = 0  # the beam width of requests that do not choose one (0: greedy)
    backend: str = "torch"
    threads: int | None = None
    workers: int = 1  # inference threads taking batches from the one queue (one model in memory)
    # Dynamic batching: a batch closes at max_batch images or max_wait_ms after its first image.
    max_batch: int = 32
    max_wait_ms: float = 5.0
    # Limits on what one request may ask.
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 4_000_000  # per image, width x height read from its header
    max_images: int = 64  # per request
    max_beam: int = 32
    timeout_s: float = 30.0  # per request, body upload included
    digit_model: str = "mnist"  # /v1/digits when a request names none
    shutdown_grace_s: float = 30.0  # SIGTERM: how long in-flight requests may still take
    log_level: str = "info"

    def __post_init__(self) -> None:
        positive = ("workers", "max_batch", "max_body_bytes", "max_pixels", "max_images", "timeout_s", "port")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_wait_ms < 0 or self.shutdown_grace_s < 0:
            raise ValueError("max_wait_ms and shutdown_grace_s must not be negative")
        if not 0 <= self.beam <= self.max_beam:
            raise ValueError(f"beam must lie in [0, max_beam={self.max_beam}], got {self.beam}")
        if self.max_pixels > MAX_PIXELS:
            raise ValueError(f"max_pixels cannot exceed the loader's own limit of {MAX_PIXELS:,}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
