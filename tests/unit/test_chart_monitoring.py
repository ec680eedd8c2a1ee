"""The chart's optional Grafana dashboard and PrometheusRule carry the checked files unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.unit.test_chart import CHART, find, helm, render, run_helm

FILES = CHART / "files"
__all__ = ["helm"]  # the module-scoped fixture, shared with test_chart.py
BOTH = ("--set", "metrics.grafanaDashboard.enabled=true", "--set", "metrics.prometheusRule.enabled=true")


def test_neither_is_rendered_by_default(helm: Path) -> None:
    docs = render(helm)
    assert not find(docs, "PrometheusRule")
    assert not [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]


def test_dashboard_configmap_carries_the_dashboard_for_the_sidecar(helm: Path) -> None:
    (configmap,) = [
        d for d in find(render(helm, *BOTH), "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")
    ]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(configmap["data"]["mimo-vllm.json"]) == json.loads(
        (FILES / "grafana-dashboard.json").read_text()
    )


def test_prometheus_rule_carries_the_alerts_untemplated(helm: Path) -> None:
    (rule,) = find(
        render(helm, *BOTH, "--set", "metrics.prometheusRule.labels.release=kps"), "PrometheusRule"
    )
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["spec"] == yaml.safe_load((FILES / "prometheus-rules.yaml").read_text())
    assert "{{ $labels.deployment }}" in json.dumps(rule["spec"])


@pytest.mark.parametrize(
    "bad", ["metrics.grafanaDashboard.enable=true", "metrics.prometheusRule.enabled=yes"]
)
def test_schema_refuses_typos_and_wrong_types(helm: Path, bad: str) -> None:
    proc = run_helm(helm, "template", "x", str(CHART), "--set", bad)
    assert proc.returncode != 0 and "values don't meet the specifications of the schema" in proc.stderr
