"""Prometheus metrics of one server (own registry, so several apps in one process do not collide)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("cad2program_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram("cad2program_request_latency_seconds", "Time from request to response",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("cad2program_batch_size", "Drawings per model call",
                                    buckets=BATCH_SIZE_BUCKETS, registry=self.registry)
        self.batch_latency = Histogram("cad2program_batch_seconds", "Time of one model call on a batch",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("cad2program_queue_depth", "Requests waiting for a batch",
                                 registry=self.registry)
        self.in_flight = Gauge("cad2program_requests_in_flight",
                               "Recognition requests held now (decoding, queued or being read); over "
                               "--max-queue a request gets 503", registry=self.registry)
        self.max_queue = Gauge("cad2program_max_queue", "The --max-queue limit", registry=self.registry)
        self.ready = Gauge("cad2program_ready", "1 when the model is loaded and warmed up", registry=self.registry)
        self.internal_errors = Counter("cad2program_internal_errors", "Unexpected exceptions (bugs)",
                                       registry=self.registry)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_latency.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
