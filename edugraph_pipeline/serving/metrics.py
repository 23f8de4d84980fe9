"""Prometheus metrics of one service instance, in a registry of its own (two apps in one process never mix)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds: from a ~20 ms GGUF answer on a GPU to a CPU request that waited behind a full queue.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServiceMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "edugraph_http_requests", "HTTP requests answered, by route and status code.",
            ["route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "edugraph_http_request_duration_seconds", "Time from request start to response start, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.errors = Counter(
            "edugraph_request_errors", "Requests refused or failed, by error code.", ["code"], registry=self.registry,
        )
        self.batch_images = Histogram(
            "edugraph_batch_images", "Images per model batch.", buckets=BATCH_BUCKETS, registry=self.registry,
        )
        self.images = Counter("edugraph_images_classified", "Images classified.", registry=self.registry)
        self.queue = Gauge("edugraph_queue_requests", "Requests waiting for a batch.", registry=self.registry)
        self.ready = Gauge("edugraph_model_ready", "1 once the model is loaded.", registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
