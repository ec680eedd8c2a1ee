"""Autoscaler and monitoring children, and the conditions that explain what the autoscaler is doing."""

import dataclasses
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mimo_operator.api import SpecInvalid, parse_mimo_deployment
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


# --- issue 19: scaling that knows the start-up time, routes with the right timeouts ----------------

EVERYTHING = dataclasses.replace(WITH_CRDS, gateway_api_available=True, inference_pool_available=True)


def _children(md: Any, config: RenderConfig) -> dict[str, dict[str, Any]]:
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    return {c["kind"]: c for c in render_children(md, plan, config)}


def _startup_window(children: dict[str, dict[str, Any]]) -> int:
    probe = children["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    return int(probe["periodSeconds"] * probe["failureThreshold"])


def test_one_burst_orders_at_most_the_allowed_replicas_per_startup_window() -> None:
    for engine, config in (("hpa", RenderConfig()), ("keda", WITH_CRDS)):
        md = _md(autoscaling={"engine": engine, "maxReplicas": 8, "scaleUpReplicasPerStartup": 2})
        children = _children(md, config)
        window = _startup_window(children)
        auto = children["HorizontalPodAutoscaler" if engine == "hpa" else "ScaledObject"]["spec"]
        behavior = (
            auto["behavior"]
            if engine == "hpa"
            else auto["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        )
        up = behavior["scaleUp"]
        # One policy, so selectPolicy cannot pick a faster one: 2 replicas per start-up window.
        assert up["policies"] == [{"type": "Pods", "value": 2, "periodSeconds": window}]
        # A burst must outlast a tenth of the window before it orders anything.
        assert up["stabilizationWindowSeconds"] == -(-window // 10)
        # Scale-down keeps its own calm and one-at-a-time pace.
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 900


def test_a_start_longer_than_the_hpa_allows_is_capped_and_says_so() -> None:
    md = _md(autoscaling={"maxReplicas": 4}, probes={"startupBudgetSeconds": 3600})
    children = _children(md, RenderConfig())
    assert (
        children["HorizontalPodAutoscaler"]["spec"]["behavior"]["scaleUp"]["policies"][0]["periodSeconds"]
        == 1800
    )
    scaling = _status(md, None).autoscaling
    assert scaling is None  # _status passes no policy; the reconcile does (below)
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    from mimo_operator.render.autoscaling import autoscaling_status

    status = autoscaling_status(md, plan, RenderConfig())
    assert status is not None
    assert (status.startup_budget_seconds, status.scale_up_period_seconds) == (3600, 1800)
    assert "the HPA's longest policy period" in status.summary


def test_status_reports_the_derived_numbers() -> None:
    from mimo_operator.render.autoscaling import autoscaling_status

    md = _md(autoscaling={"engine": "keda", "scaleToZero": True, "maxReplicas": 3})
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    status = autoscaling_status(md, plan, RenderConfig())
    assert status is not None
    children = _children(md, WITH_CRDS)
    window = _startup_window(children)
    scaled = children["ScaledObject"]["spec"]
    assert status.startup_budget_seconds == window == status.scale_up_period_seconds
    assert status.polling_seconds == scaled["pollingInterval"]
    assert status.cooldown_seconds == scaled["cooldownPeriod"] == window  # above the 900 s calm
    assert status.idle_replicas == scaled["idleReplicaCount"] == 0
    assert f"per {window} s" in status.summary and "goes to 0 replicas" in status.summary
    dumped = compute_status(
        md, plan, plan_hash(md, plan, RenderConfig()), [], 1, NOW, None, True, scaling=status
    ).model_dump(by_alias=True, exclude_none=True)
    assert dumped["autoscaling"]["scaleUpPeriodSeconds"] == window


def test_scale_to_zero_is_keda_only_and_idles_on_no_running_or_waiting_request() -> None:
    with pytest.raises(SpecInvalid, match="scaleToZero needs engine: keda"):
        _md(autoscaling={"engine": "hpa", "scaleToZero": True})
    md = _md(autoscaling={"engine": "keda", "scaleToZero": True}, replicas=0)
    assert md.spec.effective_replicas() == 0  # KEDA's idle write is not clamped back to minReplicas
    assert _md(autoscaling={"engine": "keda"}, replicas=0).spec.effective_replicas() == 1
    scaled = _children(md, WITH_CRDS)["ScaledObject"]["spec"]
    activity = next(t for t in scaled["triggers"] if t.get("name") == "activity")
    assert "vllm:num_requests_running" in activity["metadata"]["query"]
    assert "vllm:num_requests_waiting" in activity["metadata"]["query"]
    assert activity["metadata"]["activationThreshold"] == "0"
    without = _children(_md(autoscaling={"engine": "keda"}), WITH_CRDS)["ScaledObject"]["spec"]
    assert "idleReplicaCount" not in without and len(without["triggers"]) == 1


def test_route_only_where_the_gateway_api_is_served_and_only_to_the_api() -> None:
    md = _md(route={"gateway": {"name": "public", "namespace": "gateways", "sectionName": "https"}})
    assert "HTTPRoute" not in _children(md, WITH_CRDS)
    route = _children(md, EVERYTHING)["HTTPRoute"]
    assert route["spec"]["parentRefs"] == [
        {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": "public",
            "namespace": "gateways",
            "sectionName": "https",
        }
    ]
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/v1"}}]
    assert rule["backendRefs"] == [
        {"name": "mimo-auto", "port": 8000}  # the API Service (ClusterIP), not the headless pods Service
    ]
    assert ("gateway.networking.k8s.io/v1", "HTTPRoute") in child_kinds(EVERYTHING)
    assert ("gateway.networking.k8s.io/v1", "HTTPRoute") not in child_kinds(WITH_CRDS)


def _timeout(md: Any) -> int:
    rule = _children(md, EVERYTHING)["HTTPRoute"]["spec"]["rules"][0]
    assert rule["timeouts"]["request"] == rule["timeouts"]["backendRequest"]
    return int(rule["timeouts"]["request"].removesuffix("s"))


def test_route_timeout_follows_max_model_len_and_decode_speed_within_floor_and_ceiling() -> None:
    route = {"gateway": {"name": "gw"}}
    lengths = [4096, 32768, 65536, 131072, 262144]
    timeouts = [_timeout(_md(route=route, context={"maxModelLen": n})) for n in lengths]
    assert timeouts == sorted(timeouts) and timeouts[0] < timeouts[-1]  # longer answers, longer timeout
    assert min(timeouts) == 300  # the guide's 300 s for reasoning requests is the floor
    assert max(timeouts) == 3600  # an hour is the ceiling
    # Between floor and ceiling: max-model-len tokens at the plan's per-request decode speed at full load.
    md = _md(route=route, context={"maxModelLen": 65536})
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan) and plan.est_decode_tokens_per_s_per_gpu
    speed = plan.est_decode_tokens_per_s_per_gpu * plan.gpus_per_replica / 1024  # vLLM max_num_seqs
    assert _timeout(md) > 300 and abs(_timeout(md) - 65536 / speed) <= 10
    assert _timeout(_md(route={**route, "requestTimeoutSeconds": 900})) == 900


def test_inference_pool_only_when_served_and_only_over_serving_pods() -> None:
    route = {"gateway": {"name": "gw"}, "endpointPicker": {"name": "mimo-epp"}}
    multi = yaml.safe_load((GOLDEN / "bf16-h100-multinode.input.yaml").read_text())
    multi["spec"]["route"] = route
    md = parse_mimo_deployment(multi)
    without_api = _children(md, dataclasses.replace(EVERYTHING, inference_pool_available=False))
    assert "InferencePool" not in without_api
    assert without_api["HTTPRoute"]["spec"]["rules"][0]["backendRefs"][0].get("kind") is None  # the Service
    children = _children(md, EVERYTHING)
    pool = children["InferencePool"]
    assert pool["apiVersion"] == "inference.networking.k8s.io/v1"
    leaders = pool["spec"]["selector"]["matchLabels"]
    assert leaders == {"serving.mimo.dev/deployment": md.metadata.name, "apps.kubernetes.io/pod-index": "0"}
    # Exactly the pods that answer on the API port: the group leaders, not the headless workers.
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan) and plan.nodes_per_replica > 1
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    assert pool["spec"]["endpointPickerRef"] == {"name": "mimo-epp", "port": {"number": 9002}}
    assert children["HTTPRoute"]["spec"]["rules"][0]["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": md.metadata.name}
    ]
    # A route without an endpoint picker never makes a pool, even where the API is served.
    assert "InferencePool" not in _children(_md(route={"gateway": {"name": "gw"}}), EVERYTHING)
