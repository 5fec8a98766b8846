"""Prometheus metrics: what every portal process counts, and the /metrics exposition.

Every label takes its values from a fixed set (HTTP routes by template, never by raw
path; statuses, outcomes and refusal reasons from the tuples below), so the number of
series stays bounded whatever users send.

Several processes count the same things: uvicorn workers, Dramatiq worker processes,
the LLM gateway. The `portal` commands point PROMETHEUS_MULTIPROC_DIR at
`<data dir>/metrics/<command>` before prometheus-client is first imported
(portal.cli.common.use_metrics_dir); each process then keeps its values in files there,
and a scrape adds up the files of every command (`render`). Without that variable (the
tests, a bare `uvicorn portal.asgi:app`) the values stay in this process.

Gauge modes, chosen per gauge: requests in progress are `livesum` (the sum over the
processes still running: one that exited serves nothing), the last leaderboard refresh
is `max` (the newest refresh any process made, even one that has exited since). Values
read from the database or Redis at scrape time (queue depth, workers alive) are not kept
here: portal.health.scrape computes them for each scrape.
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing.util
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
QUIET_ROUTES = frozenset({"/healthz", "/metrics", "/static"})

# Label values. Run statuses a recorded result can have (portal.evaluation.models.RunStatus
# without queued and running; tests/unit/test_metrics_definitions.py keeps them equal).
RUN_STATUSES = (
    "scored",
    "failed",
    "timeout",
    "memory_limit",
    "disk_limit",
    "invalid_answer",
    "cancelled",
)
# What became of a chat completion call at the gateway.
LLM_OUTCOMES = (
    "allowed",  # forwarded, and the model answered
    "refused",  # over one of the team's budgets, or a model it may not call
    "invalid_request",  # malformed (not JSON, no model or messages, too large)
    "unauthorized",  # no, wrong or expired key
    "unavailable",  # the gateway's own database or Redis could not be reached
    "upstream_error",  # the model server failed, was unreachable or too slow (5xx)
    "upstream_rejected",  # the model server refused the call (4xx: unknown model, ...)
)
# The budgets that refuse gateway calls (portal.llm.budgets.Refusal).
LLM_REFUSAL_KINDS = ("requests", "tokens", "parallel", "model")
# A refused upload's error code -> the reason counted (a few words, not every code).
UPLOAD_REFUSALS = {
    "no_file": "invalid_file",
    "not_python_file": "invalid_file",
    "empty_file": "invalid_file",
    "nul_byte": "invalid_file",
    "not_utf8": "invalid_file",
    "note_too_long": "invalid_file",
    "syntax_error": "syntax_error",
    "payload_too_large": "too_large",
    "duplicate_submission": "duplicate",
    "quota_exceeded": "quota_exceeded",
    "competition_not_started": "outside_window",
    "competition_ended": "outside_window",
    "storage_unavailable": "unavailable",
}
OTHER_REFUSAL = "other"
UPLOAD_REFUSAL_REASONS = (*sorted(set(UPLOAD_REFUSALS.values())), OTHER_REFUSAL)

HTTP_REQUESTS = Counter(
    "portal_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "portal_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_IN_PROGRESS = Gauge(
    "portal_http_requests_in_progress",
    "HTTP requests being served now, over the portal processes still running",
    multiprocess_mode="livesum",
)
EVALUATION_RUNS = Counter(
    "portal_evaluation_runs_total", "Evaluation runs whose result was recorded", ["status"]
)
EVALUATION_RUN_SECONDS = Histogram(
    "portal_evaluation_run_seconds",
    "Wall time of a run's untrusted step (the submission in its sandbox)",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
LLM_REQUESTS = Counter(
    "portal_llm_requests_total", "Chat completion calls to the LLM gateway", ["outcome"]
)
LLM_REFUSALS = Counter(
    "portal_llm_refusals_total",
    "Chat completion calls refused, by the budget that refused them",
    ["kind"],
)
LLM_UPSTREAM_SECONDS = Histogram(
    "portal_llm_upstream_seconds",
    "Time the model server took to answer (to its response headers for streamed calls)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
LEADERBOARD_REFRESH_SECONDS = Histogram(
    "portal_leaderboard_refresh_seconds",
    "Time to refresh the leaderboard views",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LEADERBOARD_REFRESHED_AT = Gauge(
    "portal_leaderboard_last_refresh_timestamp_seconds",
    "When the leaderboard views were last refreshed (Unix time)",
    multiprocess_mode="max",
)
SUBMISSIONS = Counter(
    "portal_submissions_total",
    "Uploads: result accepted, or refused with a reason",
    ["result", "reason"],
)

# Every labelled series exists from the start at 0: a rate over a series that appears
# only with its first event misses that event, and dashboards show 0, not "no data".
for _status in RUN_STATUSES:
    EVALUATION_RUNS.labels(_status)
# The gateway's series by label value, looked up once: on a path that counts every call,
# `labels()` cost more than the update itself.
_LLM_CALLS = {outcome: LLM_REQUESTS.labels(outcome) for outcome in LLM_OUTCOMES}
_LLM_REFUSALS = {kind: LLM_REFUSALS.labels(kind) for kind in LLM_REFUSAL_KINDS}
SUBMISSIONS.labels("accepted", "")
for _reason in UPLOAD_REFUSAL_REASONS:
    SUBMISSIONS.labels("refused", _reason)


@functools.cache
def _request_series(method: str, route: str, status: int) -> tuple[Counter, Histogram]:
    """One route's series, looked up once per label set (bounded, as the labels are):
    `labels()` cost more than the update itself."""
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    requests, latency = _request_series(method, route, status)
    requests.inc()
    latency.observe(seconds)


def observe_run(status: str, seconds: float | None) -> None:
    """A run's result was recorded; `seconds` is None when it never ran (an error
    before the sandbox started)."""
    EVALUATION_RUNS.labels(status).inc()
    if seconds is not None:
        EVALUATION_RUN_SECONDS.observe(seconds)


def count_llm_call(outcome: str, refused_by: str | None = None) -> None:
    _LLM_CALLS[outcome].inc()
    if refused_by is not None:
        _LLM_REFUSALS[refused_by].inc()


def observe_llm_upstream(seconds: float) -> None:
    LLM_UPSTREAM_SECONDS.observe(seconds)


def observe_leaderboard_refresh(seconds: float, finished_at: float) -> None:
    LEADERBOARD_REFRESH_SECONDS.observe(seconds)
    LEADERBOARD_REFRESHED_AT.set(finished_at)


def count_upload(refusal_code: str | None) -> None:
    """One upload: accepted (None) or refused with this error code."""
    if refusal_code is None:
        SUBMISSIONS.labels("accepted", "").inc()
    else:
        SUBMISSIONS.labels("refused", UPLOAD_REFUSALS.get(refusal_code, OTHER_REFUSAL)).inc()


def multiprocess_active() -> bool:
    """Whether this process keeps its values in PROMETHEUS_MULTIPROC_DIR (decided by
    prometheus-client when it was first imported)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


class _Families:
    """Hands fixed metric families to a registry (collected before the scrape)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families


def _value_files(metrics_root: Path) -> list[str]:
    """The value files of every command under `metrics_root`, and of this process's own
    directory (resolved, so no directory is counted twice)."""
    directories = {Path(os.environ[MULTIPROC_ENV]).resolve()}
    if metrics_root.is_dir():
        directories |= {path.resolve() for path in metrics_root.iterdir() if path.is_dir()}
    return sorted(str(path) for directory in directories for path in directory.glob("*.db"))


def render(metrics_root: Path, scraped: Iterable[Metric] = ()) -> tuple[bytes, str]:
    """The exposition: this deployment's counted values (summed over processes in
    multiprocess mode) and the families `scraped` just now."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_active():
        counted = MultiProcessCollector.merge(_value_files(metrics_root), accumulate=True)
    else:
        counted = REGISTRY.collect()
    registry.register(_Families(counted))
    registry.register(_Families(scraped))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _forget_this_process() -> None:
    # Drops this process's `live*` gauges, so requests it was serving when it stopped
    # do not count as in progress forever. A process killed outright cannot do this;
    # its command's next start empties the directory.
    mark_process_dead(os.getpid())


if multiprocess_active():
    atexit.register(_forget_this_process)
    # multiprocessing children (uvicorn and Dramatiq workers) leave through os._exit,
    # past atexit; multiprocessing runs its own finalizers first.
    multiprocessing.util.Finalize(None, _forget_this_process, exitpriority=0)
