"""The shipped Grafana dashboard and alert rules query only metrics that really exist.

vLLM's metric names are read from the installed vLLM 0.33.0 source (the venv tests/vllm_cli keeps), with
the suffixes prometheus_client adds (`_total` for counters; `_bucket`, `_sum`, `_count` for histograms);
the operator's from its own registry. A renamed metric in a vLLM upgrade fails here, not in a dashboard.
"""

import json
import re
from pathlib import Path

import pytest
import yaml

from mimo_operator.handlers.metrics import OperatorMetrics
from tests.vllm_cli.harness import ensure_vllm_venv, vllm_source_dir

FILES = Path(__file__).resolve().parents[2] / "charts" / "mimo-operator" / "files"
METRIC = re.compile(r"\b(vllm:[a-z0-9_]+|mimo_operator_[a-z0-9_]+)")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _vllm_metrics() -> set[str]:
    ensure_vllm_venv()
    source = "\n".join(p.read_text() for p in (vllm_source_dir() / "v1").rglob("*.py"))
    typed = re.findall(r"_(counter|gauge|histogram)_cls\(\s*name=\"(vllm:[a-z0-9_]+)\"", source)
    counters = re.findall(r"\(\"(vllm:spec_decode_[a-z0-9_]+)\",", source)  # spec decode counter_specs
    names: set[str] = set()
    for kind, base in [*typed, *(("counter", c) for c in counters)]:
        names.update(base + suffix for suffix in SUFFIXES[kind])
    return names


def _operator_metrics() -> set[str]:
    names: set[str] = set()
    for family in OperatorMetrics().registry.collect():
        kind = family.type if family.type in SUFFIXES else "gauge"
        names.update(family.name + suffix for suffix in SUFFIXES[kind])
    return names


@pytest.fixture(scope="module")
def known() -> set[str]:
    return _vllm_metrics() | _operator_metrics()


def _dashboard() -> dict:  # type: ignore[type-arg]
    return json.loads((FILES / "grafana-dashboard.json").read_text())


def test_the_metric_list_is_real() -> None:
    vllm = _vllm_metrics()
    # Sanity: the names the autoscaler relies on are in vLLM 0.33's source.
    assert {
        "vllm:num_requests_waiting",
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:generation_tokens_total",
    } <= vllm
    assert "vllm:gpu_cache_usage_perc" not in vllm  # removed in 0.12


def test_every_dashboard_query_uses_exported_metrics(known: set[str]) -> None:
    panels = [p for p in _dashboard()["panels"] if p["type"] != "row"]
    assert len(panels) >= 12
    for panel in panels:
        used = {m for target in panel["targets"] for m in METRIC.findall(target["expr"])}
        assert used, f"panel {panel['title']!r} queries no metric"
        assert used <= known, f"panel {panel['title']!r} uses unknown metrics {used - known}"


def test_dashboard_covers_what_a_platform_team_watches() -> None:
    exprs = " ".join(t["expr"] for p in _dashboard()["panels"] if p["type"] != "row" for t in p["targets"])
    for needed in (
        "vllm:request_success_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
        "vllm:spec_decode_num_accepted_tokens_total",
        "mimo_operator_gpus_planned",
        "mimo_operator_gpus_ready",
    ):
        assert needed in exprs, needed
    ids = [p["id"] for p in _dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_alert_rules_use_exported_metrics(known: set[str]) -> None:
    groups = yaml.safe_load((FILES / "prometheus-rules.yaml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {r["alert"] for r in rules} >= {
        "MimoDeploymentQueueAtMaxReplicas",
        "MimoKVCacheNearlyFull",
        "MimoDeploymentNotReady",
        "MimoOperatorReconcileErrors",
    }
    for rule in rules:
        used = set(METRIC.findall(rule["expr"]))
        assert used and used <= known, f"{rule['alert']} uses unknown metrics {used - known}"
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
