"""How Prometheus finds the vLLM pods: a PodMonitor when the Prometheus Operator is installed, and
prometheus.io/* annotations on the pods always (they cost nothing, and adding them only when the
PodMonitor CRD is missing would roll every pod the day the Prometheus Operator is installed)."""

from __future__ import annotations

from typing import Any

from mimo_operator.api import MimoDeployment, constants
from mimo_operator.planner import Plan
from mimo_operator.render import names
from mimo_operator.render.config import RenderConfig

SCRAPE_ANNOTATIONS = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(constants.HTTP_PORT),
    "prometheus.io/path": "/metrics",
}


def render_pod_monitor(md: MimoDeployment, plan: Plan, config: RenderConfig) -> dict[str, Any] | None:
    """Scrapes the pods that serve HTTP (leaders); headless workers have no /metrics."""
    if not config.pod_monitor_available:
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": names.object_meta(md, md.metadata.name, "monitoring"),
        "spec": {
            "selector": {"matchLabels": names.leader_selector(md, plan.nodes_per_replica > 1)},
            "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }
