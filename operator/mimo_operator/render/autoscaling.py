"""The autoscaler that scales a MimoDeployment through its scale subresource: an autoscaling/v2
HorizontalPodAutoscaler, or a KEDA ScaledObject when `engine: keda` and KEDA is installed.

Its target is the MimoDeployment itself, so the CR stays the only writer of pod counts: the HPA
writes spec.replicas, the operator turns that into StatefulSets. Metrics are vLLM's own, read per
leader pod through a Prometheus Adapter that renames `vllm:x` to `vllm_x` (README, "Autoscaling").

A new replica needs the plan's start-up budget (minutes: weights, compile, CUDA graphs) before it
serves, and while it loads the queue it was ordered for stays high. An autoscaler that re-reads the
queue every 15 s would keep ordering replicas for the same burst. So the scale-up policy is derived
from that budget (`ScalingPolicy`): at most N replicas per start-up window, only after the queue has
stayed above target for a tenth of that window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mimo_operator.api import AutoscalingStatus, MimoDeployment, constants
from mimo_operator.planner import Plan
from mimo_operator.planner.memory import MAX_NUM_SEQS
from mimo_operator.render import names
from mimo_operator.render.config import RenderConfig
from mimo_operator.render.probes import startup_budget_seconds

# spec.autoscaling.metric -> the Pods metric the Prometheus Adapter serves for vLLM's series
# (vLLM 0.33 metrics: vllm:num_requests_waiting, vllm:kv_cache_usage_perc, vllm:num_requests_running).
ADAPTER_METRICS = {
    "queueDepth": "vllm_num_requests_waiting",
    "kvCacheUsage": "vllm_kv_cache_usage_perc",
    "runningRequests": "vllm_num_requests_running",
}

# Limits of autoscaling/v2 HPAScalingPolicy.periodSeconds (0 < p <= 1800) and
# HPAScalingRules.stabilizationWindowSeconds (0..3600): kubernetes pkg/apis/autoscaling/validation
# (MaxPeriodSeconds, MaxStabilizationWindowSeconds). The sandbox's kube-apiserver enforces both.
MAX_POLICY_PERIOD_SECONDS = 1800
MAX_STABILIZATION_SECONDS = 3600
# A burst must last a tenth of the start-up window before it orders a replica: a burst over in less
# would be gone ten times over by the time the replica serves. Floor: two HPA syncs (15 s default,
# kube-controller-manager --horizontal-pod-autoscaler-sync-period); ceiling: 5 minutes of waiting users.
SCALE_UP_STABILIZATION_FRACTION = 10
MIN_SCALE_UP_STABILIZATION_SECONDS = 30
MAX_SCALE_UP_STABILIZATION_SECONDS = 300
# KEDA polls its trigger every pollingInterval (default 30 s, keda.sh ScaledObject spec). A poll every
# fortieth of the start-up window delays a decision by a few percent of the start, no more; between
# 15 s and 60 s so Prometheus is not hammered nor the first request after idle kept waiting.
POLLING_FRACTION = 40
MIN_POLLING_SECONDS = 15
MAX_POLLING_SECONDS = 60
# Scale-down: one replica per 5 minutes, after spec.autoscaling.scaleDownStabilizationSeconds of calm.
SCALE_DOWN_PERIOD_SECONDS = 300


@dataclass(frozen=True)
class ScalingPolicy:
    """The numbers derived from the start-up budget; reported in status.autoscaling and the README."""

    startup_budget_seconds: int
    scale_up_replicas: int  # at most this many replicas added ...
    scale_up_period_seconds: int  # ... within any window this long
    scale_up_stabilization_seconds: int  # the queue must stay above target this long first
    period_capped: bool  # the budget exceeds the HPA's 1800 s policy period
    polling_seconds: int | None  # KEDA only
    cooldown_seconds: int | None  # KEDA scale-to-zero only
    idle_replicas: int | None  # 0 with scale-to-zero


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def scaling_policy(md: MimoDeployment, plan: Plan, config: RenderConfig) -> ScalingPolicy | None:
    auto = md.spec.autoscaling
    if auto is None:
        return None
    budget = startup_budget_seconds(md, plan, config)
    keda = auto.engine == "keda"
    return ScalingPolicy(
        startup_budget_seconds=budget,
        scale_up_replicas=auto.scale_up_replicas_per_startup,
        scale_up_period_seconds=min(budget, MAX_POLICY_PERIOD_SECONDS),
        scale_up_stabilization_seconds=_clamp(
            math.ceil(budget / SCALE_UP_STABILIZATION_FRACTION),
            MIN_SCALE_UP_STABILIZATION_SECONDS,
            MAX_SCALE_UP_STABILIZATION_SECONDS,
        ),
        period_capped=budget > MAX_POLICY_PERIOD_SECONDS,
        polling_seconds=_clamp(round(budget / POLLING_FRACTION), MIN_POLLING_SECONDS, MAX_POLLING_SECONDS)
        if keda
        else None,
        # Ski rental: stay warm for as long as coming back costs, then go to zero. Never shorter than
        # the scale-down calm the user asked for.
        cooldown_seconds=max(budget, auto.scale_down_stabilization_seconds)
        if keda and auto.scale_to_zero
        else None,
        idle_replicas=0 if keda and auto.scale_to_zero else None,
    )


def autoscaling_status(md: MimoDeployment, plan: Plan, config: RenderConfig) -> AutoscalingStatus | None:
    policy = scaling_policy(md, plan, config)
    if policy is None:
        return None
    capped = " (the HPA's longest policy period)" if policy.period_capped else ""
    summary = (
        f"adds at most {policy.scale_up_replicas} replica(s) per {policy.scale_up_period_seconds} s"
        f"{capped}, after the metric stays above target for {policy.scale_up_stabilization_seconds} s; "
        f"a new replica may take {policy.startup_budget_seconds} s to load"
    )
    if policy.cooldown_seconds is not None:
        summary += f"; goes to 0 replicas after {policy.cooldown_seconds} s without requests"
    return AutoscalingStatus(
        startup_budget_seconds=policy.startup_budget_seconds,
        scale_up_replicas=policy.scale_up_replicas,
        scale_up_period_seconds=policy.scale_up_period_seconds,
        scale_up_stabilization_seconds=policy.scale_up_stabilization_seconds,
        polling_seconds=policy.polling_seconds,
        cooldown_seconds=policy.cooldown_seconds,
        idle_replicas=policy.idle_replicas,
        summary=summary,
    )


def _behavior(md: MimoDeployment, policy: ScalingPolicy) -> dict[str, Any]:
    auto = md.spec.autoscaling
    assert auto is not None
    return {
        # Only N replicas per start-up window: the ones ordered are given the time to load before the
        # still-high queue may order more. A burst shorter than the stabilization orders nothing.
        "scaleUp": {
            "stabilizationWindowSeconds": policy.scale_up_stabilization_seconds,
            "selectPolicy": "Max",
            "policies": [
                {
                    "type": "Pods",
                    "value": policy.scale_up_replicas,
                    "periodSeconds": policy.scale_up_period_seconds,
                }
            ],
        },
        # A replica takes many minutes to come back: remove one at a time, after a long calm.
        "scaleDown": {
            "stabilizationWindowSeconds": auto.scale_down_stabilization_seconds,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": SCALE_DOWN_PERIOD_SECONDS}],
        },
    }


def render_hpa(md: MimoDeployment, plan: Plan, config: RenderConfig) -> dict[str, Any] | None:
    auto = md.spec.autoscaling
    policy = scaling_policy(md, plan, config)
    if auto is None or auto.engine != "hpa" or policy is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": names.object_meta(md, md.metadata.name, "autoscaler"),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": constants.API_VERSION,
                "kind": constants.KIND,
                "name": md.metadata.name,
            },
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": ADAPTER_METRICS[auto.metric]},
                        "target": {"type": "AverageValue", "averageValue": auto.target},
                    },
                }
            ],
            "behavior": _behavior(md, policy),
        },
    }


# PromQL per metric for KEDA's Prometheus trigger: the per-replica average over leader pods, so the
# threshold means the same as the HPA's AverageValue target.
KEDA_QUERIES = {
    "queueDepth": "vllm:num_requests_waiting",
    "kvCacheUsage": "vllm:kv_cache_usage_perc",
    "runningRequests": "vllm:num_requests_running",
}


def render_scaled_object(md: MimoDeployment, plan: Plan, config: RenderConfig) -> dict[str, Any] | None:
    auto = md.spec.autoscaling
    policy = scaling_policy(md, plan, config)
    if auto is None or auto.engine != "keda" or not config.keda_available or policy is None:
        return None
    series = KEDA_QUERIES[auto.metric]
    query = f'avg({series}{{namespace="{md.metadata.namespace}",pod=~"{md.metadata.name}-.*"}})'
    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND,
            "name": md.metadata.name,
        },
        "pollingInterval": policy.polling_seconds,
        "minReplicaCount": auto.min_replicas,
        "maxReplicaCount": auto.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": _behavior(md, policy)}},
        "triggers": [
            {
                "type": "prometheus",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": config.prometheus_address,
                    "query": query,
                    "threshold": auto.target,
                },
            }
        ],
    }
    if policy.idle_replicas is not None and policy.cooldown_seconds is not None:
        # KEDA: idleReplicaCount must be below minReplicaCount and only 0 is supported; cooldownPeriod
        # is the calm before going idle (keda.sh ScaledObject spec).
        spec["idleReplicaCount"] = policy.idle_replicas
        spec["cooldownPeriod"] = policy.cooldown_seconds
        # Idle means no request running or waiting (a queue-depth trigger alone would idle a deployment
        # busy with running requests). Its threshold is vLLM's max_num_seqs, what one replica can run,
        # so it never asks for more replicas than are truly full. Once at zero no pod exports metrics:
        # this trigger cannot wake the deployment (README says what does).
        selector = f'{{namespace="{md.metadata.namespace}",pod=~"{md.metadata.name}-.*"}}'
        activity = f"sum(vllm:num_requests_running{selector}) + sum(vllm:num_requests_waiting{selector})"
        spec["triggers"].append(
            {
                "type": "prometheus",
                "name": "activity",
                "metricType": "AverageValue",
                "metadata": {
                    "serverAddress": config.prometheus_address,
                    "query": activity,
                    "threshold": str(MAX_NUM_SEQS),
                    "activationThreshold": "0",
                },
            }
        )
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": names.object_meta(md, md.metadata.name, "autoscaler"),
        "spec": spec,
    }
