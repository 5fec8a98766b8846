"""Prometheus metrics, labelled by route template (/api/v1/teams/{team_id}), never by
raw path, so label cardinality stays bounded."""

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

QUIET_ROUTES = frozenset({"/healthz", "/metrics", "/static"})

REQUESTS = Counter("portal_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "portal_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def render_latest() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
