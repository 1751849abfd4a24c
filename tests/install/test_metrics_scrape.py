"""The scrape path: argo/monitoring/'s ServiceMonitor finds the installed metrics Service, which
reaches the controller's --metrics-port, which the NetworkPolicy lets in."""

from __future__ import annotations

from typing import Any

from tests.install.conftest import ARGO, find, load_yaml

MONITOR = load_yaml(ARGO / "monitoring" / "servicemonitor.yaml")[0]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_service_monitor_scrapes_the_controllers_metrics_port(
    installed: list[dict[str, Any]], deployment: dict[str, Any], container: dict[str, Any]
) -> None:
    service = find(installed, "Service", "backup-operator-metrics")
    assert MONITOR["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert _matches(MONITOR["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = MONITOR["spec"]["endpoints"]
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert endpoint["path"] == "/metrics"

    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _matches(service["spec"]["selector"], pod_labels)
    (target,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    assert f"--metrics-port={target['containerPort']}" in container["args"]

    policy = find(installed, "NetworkPolicy", "backup-operator")
    assert _matches(policy["spec"]["podSelector"]["matchLabels"], pod_labels)
    allowed = [p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])]
    assert port["targetPort"] in allowed or target["containerPort"] in allowed


def test_the_rules_live_beside_the_monitor() -> None:
    (rule,) = load_yaml(ARGO / "monitoring" / "prometheusrule.yaml")
    assert rule["metadata"]["namespace"] == MONITOR["metadata"]["namespace"]
