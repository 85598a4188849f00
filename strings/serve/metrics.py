"""Prometheus metrics of one app: requests, errors, latency, batch sizes (a registry per app,
so that several apps in one process, as in tests, do not share counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("strings_requests", "HTTP requests answered", ("route", "status"), registry=r)
        self.errors = Counter("strings_errors", "error answers and per-image errors", ("route", "code"), registry=r)
        self.latency = Histogram(
            "strings_request_seconds", "time to answer", ("route",), buckets=LATENCY_BUCKETS, registry=r
        )
        self.images = Counter("strings_images", "images read", ("route",), registry=r)
        self.batch_size = Histogram("strings_batch_size", "images per network batch", buckets=BATCH_BUCKETS, registry=r)
        self.queued = Gauge("strings_queue_images", "images waiting for a batch", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
