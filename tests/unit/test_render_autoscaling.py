"""Autoscaler and monitoring children, and the conditions that explain what the autoscaler is doing."""

import dataclasses
from typing import Any

import kubernetes_validate
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, child_kinds, plan_for, plan_hash, render_children
from mimo_operator.render.status import compute_status
from tests.unit.test_render_golden import GOLDEN

NOW = "2026-11-29T10:00:00Z"
WITH_CRDS = dataclasses.replace(RenderConfig(), keda_available=True, pod_monitor_available=True)


def _md(**spec: Any) -> Any:
    body = yaml.safe_load((GOLDEN / "autoscaling.input.yaml").read_text())
    body["spec"].update(spec)
    return parse_mimo_deployment(body)


def _kinds(md: Any, config: RenderConfig) -> list[str]:
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    return [c["kind"] for c in render_children(md, plan, config)]


def _status(md: Any, hpa: dict[str, Any] | None, keda: bool = False) -> Any:
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    return compute_status(md, plan, plan_hash(md, plan, RenderConfig()), [], 1, NOW, hpa, keda)


def _hpa_status(**conditions: tuple[str, str]) -> dict[str, Any]:
    return {
        "status": {
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": f"{t} {r}"}
                for t, (s, r) in conditions.items()
            ]
        }
    }


def _cond(status: Any, type_: str) -> Any:
    return next((c for c in status.conditions if c.type == type_), None)


def test_keda_engine_renders_a_scaled_object_only_when_keda_is_installed() -> None:
    md = _md(
        autoscaling={
            "minReplicas": 1,
            "maxReplicas": 3,
            "engine": "keda",
            "metric": "kvCacheUsage",
            "target": "800m",
        }
    )
    assert "ScaledObject" not in _kinds(md, RenderConfig())
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    (scaled,) = [c for c in render_children(md, plan, WITH_CRDS) if c["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "MimoDeployment"
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 3)
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["metadata"]["query"].startswith("avg(vllm:kv_cache_usage_perc{")
    assert trigger["metadata"]["threshold"] == "800m"
    assert "HorizontalPodAutoscaler" not in _kinds(md, WITH_CRDS)  # one autoscaler, never two


def test_pod_monitor_only_when_its_crd_exists_and_pods_are_annotated_either_way() -> None:
    md = _md()
    assert "PodMonitor" not in _kinds(md, RenderConfig())
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    children = render_children(md, plan, WITH_CRDS)
    (monitor,) = [c for c in children if c["kind"] == "PodMonitor"]
    assert monitor["spec"]["selector"]["matchLabels"]["serving.mimo.dev/role"] == "leader"
    sts = next(c for c in children if c["kind"] == "StatefulSet")
    assert sts["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    # Installing the Prometheus Operator must not roll the vLLM pods.
    assert plan_hash(md, plan, RenderConfig()) == plan_hash(md, plan, WITH_CRDS)
    for child in children:
        if child["kind"] in ("Service", "StatefulSet", "HorizontalPodAutoscaler"):
            kubernetes_validate.validate(child, "1.35.0", strict=True)


def test_optional_kinds_are_observed_only_where_served() -> None:
    assert ("keda.sh/v1alpha1", "ScaledObject") not in child_kinds(RenderConfig())
    assert ("keda.sh/v1alpha1", "ScaledObject") in child_kinds(WITH_CRDS)


def test_keda_missing_is_a_condition_naming_the_fix() -> None:
    md = _md(autoscaling={"engine": "keda"})
    cond = _cond(_status(md, None, keda=False), "Autoscaling")
    assert (cond.status, cond.reason) == ("False", "KedaMissing")
    assert "engine: hpa" in cond.message
    assert _cond(_status(md, None, keda=True), "Autoscaling").status == "True"


def test_scaling_limited_when_the_hpa_is_held_at_max() -> None:
    md = _md()
    held = _hpa_status(ScalingActive=("True", "ValidMetricFound"), ScalingLimited=("True", "TooManyReplicas"))
    status = _status(md, held)
    limited = _cond(status, "ScalingLimited")
    assert (limited.status, limited.reason) == ("True", "AtMaxReplicas")
    assert "maxReplicas 4" in limited.message and "queueDepth" in limited.message
    assert _cond(status, "Autoscaling").status == "True"
    free = _status(
        md,
        _hpa_status(
            ScalingActive=("True", "ValidMetricFound"), ScalingLimited=("False", "DesiredWithinRange")
        ),
    )
    assert _cond(free, "ScalingLimited").status == "False"


def test_missing_metrics_surface_with_the_hpa_reason() -> None:
    status = _status(_md(), _hpa_status(ScalingActive=("False", "FailedGetPodsMetric")))
    cond = _cond(status, "Autoscaling")
    assert (cond.status, cond.reason) == ("False", "FailedGetPodsMetric")
    assert "Prometheus Adapter" in cond.message


def test_removing_autoscaling_drops_its_conditions_and_the_hpa() -> None:
    md = _md()
    with_auto = _status(md, None)
    assert _cond(with_auto, "Autoscaling") is not None
    body = yaml.safe_load((GOLDEN / "autoscaling.input.yaml").read_text())
    del body["spec"]["autoscaling"]
    body["status"] = with_auto.model_dump(by_alias=True)
    without = parse_mimo_deployment(body)
    status = _status(without, None)
    assert _cond(status, "Autoscaling") is None and _cond(status, "ScalingLimited") is None
    assert "HorizontalPodAutoscaler" not in _kinds(without, RenderConfig())
