"""The shipped Grafana dashboard and alert rules query only metrics that really exist.

vLLM's metric names are read from the installed vLLM 0.33.0 source (the venv tests/vllm_cli keeps), with
the suffixes prometheus_client adds (`_total` for counters; `_bucket`, `_sum`, `_count` for histograms);
the operator's from its own registry. A renamed metric in a vLLM upgrade fails here, not in a dashboard.
"""

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_operator.handlers.metrics import OperatorMetrics
from mimo_operator.handlers.reconcile import Outcome
from mimo_sandbox.upstream import ensure_promtool
from tests.vllm_cli.harness import ensure_vllm_venv, vllm_source_dir

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "charts" / "mimo-operator" / "files"
RULE_TESTS = REPO / "tests" / "rules" / "prometheus-rules.test.yaml"
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


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((FILES / "prometheus-rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alert_rules_use_exported_metrics(known: set[str]) -> None:
    rules = _rules()
    assert {r["alert"] for r in rules} >= {
        "MimoReplicaLoadingPastBudget",
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


def test_start_up_row_shows_time_to_ready_and_replicas_loading() -> None:
    panels = _dashboard()["panels"]
    row = next(i for i, p in enumerate(panels) if p["type"] == "row" and p["title"] == "Start-up")
    startup = panels[row + 1 : row + 4]
    exprs = " ".join(t["expr"] for p in startup for t in p["targets"])
    for needed in (
        "mimo_operator_replica_time_to_ready_seconds_bucket",
        "mimo_operator_replicas_loading",
        "mimo_operator_startup_budget_seconds",
        "mimo_operator_loading_since_timestamp_seconds",
    ):
        assert needed in exprs, needed


def test_loading_replicas_are_tracked_oldest_first() -> None:
    """What the stuck-loading alert and the start-up panels read, as a user scaling 1 -> 3 would see it."""
    metrics = OperatorMetrics()
    key = ("llm", "mimo")

    def step(replicas: int, ready: int) -> dict[str, float]:
        outcome = Outcome(
            phase="Deploying", replicas=replicas, ready_replicas=ready, startup_budget_seconds=1170
        )
        metrics.on_outcome(key, outcome, 0.01)
        labels = {"deployment_namespace": "llm", "deployment": "mimo"}
        return {
            name: metrics.registry.get_sample_value(name, labels) or 0.0
            for name in (
                "mimo_operator_replicas_loading",
                "mimo_operator_loading_since_timestamp_seconds",
                "mimo_operator_startup_budget_seconds",
            )
        } | {
            "observed": metrics.registry.get_sample_value("mimo_operator_replica_time_to_ready_seconds_count")
            or 0
        }

    first = step(1, 1)
    assert (
        first["mimo_operator_replicas_loading"] == 0
        and first["mimo_operator_loading_since_timestamp_seconds"] == 0
    )
    ordered = step(3, 1)  # the autoscaler ordered two more
    assert ordered["mimo_operator_replicas_loading"] == 2
    since = ordered["mimo_operator_loading_since_timestamp_seconds"]
    assert since > 0 and ordered["mimo_operator_startup_budget_seconds"] == 1170
    one_ready = step(3, 2)
    assert one_ready["mimo_operator_replicas_loading"] == 1 and one_ready["observed"] == 1
    assert one_ready["mimo_operator_loading_since_timestamp_seconds"] == since  # the other one, same order
    cancelled = step(2, 2)  # scaled back before the last one was ready: nothing observed for it
    assert cancelled["mimo_operator_replicas_loading"] == 0 and cancelled["observed"] == 1
    assert cancelled["mimo_operator_loading_since_timestamp_seconds"] == 0


def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    promtool = ensure_promtool()
    check = subprocess.run(
        [str(promtool), "check", "rules", str(FILES / "prometheus-rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in check.stdout
    tested = subprocess.run(
        [str(promtool), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert has a unit test of its own.
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested_alerts = {t["alertname"] for case in cases for t in case["alert_rule_test"]}
    assert {"MimoReplicaLoadingPastBudget", "MimoDeploymentNotReady"} <= tested_alerts
