"""Prometheus metrics of the API. Requests are labelled by route template (`/v1/predict`, never a raw
path), and every path no route matches shares one label, so the number of series stays bounded."""
import time

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

UNMATCHED = "<unmatched>"


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("im2latex_requests", "HTTP requests", ["route", "status"], registry=self.registry)
        self.latency = Histogram("im2latex_request_seconds", "request latency", ["route"], registry=self.registry)
        self.in_flight = Gauge("im2latex_in_flight", "requests being handled", registry=self.registry)
        self.batch_images = Histogram("im2latex_batch_images", "images per model call", buckets=(1, 2, 4, 8, 16, 32),
                                      registry=self.registry)

    def install(self, app: FastAPI) -> None:
        """Count and time every request, and serve the figures at GET /metrics."""

        @app.middleware("http")
        async def observe(request: Request, call_next):
            start = time.perf_counter()
            self.in_flight.inc()
            try:
                response = await call_next(request)
            finally:
                self.in_flight.dec()
            route = request.scope.get("route")  # set by the router on the shared scope once a route matched
            template = getattr(route, "path", UNMATCHED)
            self.requests.labels(template, str(response.status_code)).inc()
            self.latency.labels(template).observe(time.perf_counter() - start)
            return response

        @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
        async def metrics():
            return PlainTextResponse(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
