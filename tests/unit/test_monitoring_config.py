"""The monitoring profile as shipped: the files parse, and they fit together (compose
mounts what exists, Prometheus sends the token compose hands it, Grafana loads the
dashboard from where compose puts it). The images are not run here."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from portal.core import metrics
from portal.evaluation.models import RunStatus
from portal.llm.gateway.service import call_outcome

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docs" / "grafana" / "portal-dashboard.json"
MONITORING = ROOT / "deploy" / "monitoring"


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _mounts(service: dict) -> dict[str, str]:
    """target -> source of a service's short-syntax volumes."""
    return {volume.split(":")[1]: volume.split(":")[0] for volume in service.get("volumes", [])}


def test_dashboard_is_grafana_json_with_a_query_on_every_panel():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["panels"]
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert "portal_" in target["expr"], (panel["title"], target["expr"])
            assert target["datasource"]["uid"] == "${datasource}"
    titles = " | ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("queue", "runs per minute", "run wall time", "workers", "llm", "http"):
        assert subject in titles, subject
    assert "submissions" in titles and "upstream latency" in titles


def test_monitoring_services_run_only_with_the_profile_and_mount_files_that_exist():
    services = _compose()["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for target, source in _mounts(services[name]).items():
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source} at {target}"
    assert all(
        "profiles" not in service
        for name, service in services.items()
        if name not in ("prometheus", "grafana")
    )


def test_prometheus_scrapes_the_portal_with_the_token_compose_hands_it():
    compose = _compose()
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["portal:8000"]}]
    authorization = job["authorization"]
    assert authorization["type"] == "Bearer"
    prometheus = compose["services"]["prometheus"]
    assert prometheus["secrets"] == ["metrics_token"]
    assert authorization["credentials_file"] == "/run/secrets/metrics_token"
    assert compose["secrets"]["metrics_token"] == {"environment": "PORTAL_METRICS_TOKEN"}
    assert _mounts(prometheus)["/etc/prometheus/prometheus.yml"] == (
        "./deploy/monitoring/prometheus.yml"
    )
    assert "PORTAL_METRICS_TOKEN" in compose["x-portal-env"]


def test_grafana_provisions_the_datasource_and_the_dashboard_compose_mounts():
    grafana = _compose()["services"]["grafana"]
    mounts = _mounts(grafana)
    datasources = yaml.safe_load((MONITORING / "grafana" / "datasources.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((MONITORING / "grafana" / "dashboards.yml").read_text())
    (provider,) = providers["providers"]
    assert mounts[provider["options"]["path"]] == "./docs/grafana"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"


def test_every_portal_process_keeps_its_values_in_one_shared_volume():
    services = _compose()["services"]
    for name in ("portal", "worker", "llm-gateway"):
        assert _mounts(services[name])["/app/.portal/metrics"] == "metrics", name


def test_runs_are_counted_under_every_status_a_result_can_have():
    unfinished = {RunStatus.queued, RunStatus.running}
    assert set(metrics.RUN_STATUSES) == {status.value for status in RunStatus} - unfinished


def test_every_gateway_outcome_is_one_the_metrics_declare():
    outcomes = {
        call_outcome(status, refused=refused, upstream=upstream)
        for status in (200, 400, 401, 404, 413, 429, 500, 502, 503, 504)
        for refused in (False, True)
        for upstream in (False, True)
    }
    assert outcomes == set(metrics.LLM_OUTCOMES)
