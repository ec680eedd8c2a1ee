"""Every child object a MimoDeployment wants, rendered in one pure call."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mimo_operator.api import MimoDeployment
from mimo_operator.planner import Plan
from mimo_operator.render.autoscaling import render_hpa, render_scaled_object
from mimo_operator.render.config import RenderConfig
from mimo_operator.render.monitoring import render_pod_monitor
from mimo_operator.render.network import (
    render_api_service,
    render_network_policy,
    render_pdb,
    render_pods_service,
)
from mimo_operator.render.route import render_http_route, render_inference_pool
from mimo_operator.render.weights import render_cache_claim, render_fetch_job
from mimo_operator.render.workload import render_statefulsets

# Kinds the operator creates, in apply order; pruning walks the same list.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "PersistentVolumeClaim"),
    ("batch/v1", "Job"),
    ("v1", "Service"),
    # Before the StatefulSets, so that no pod starts unprotected.
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("apps/v1", "StatefulSet"),
    ("policy/v1", "PodDisruptionBudget"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
)
KEDA_KIND = ("keda.sh/v1alpha1", "ScaledObject")
POD_MONITOR_KIND = ("monitoring.coreos.com/v1", "PodMonitor")
HTTP_ROUTE_KIND = ("gateway.networking.k8s.io/v1", "HTTPRoute")
INFERENCE_POOL_KIND = ("inference.networking.k8s.io/v1", "InferencePool")


def child_kinds(config: RenderConfig) -> tuple[tuple[str, str], ...]:
    """Kinds to observe and prune: the optional ones only where the cluster serves them."""
    optional = [
        (KEDA_KIND, config.keda_available),
        (POD_MONITOR_KIND, config.pod_monitor_available),
        (INFERENCE_POOL_KIND, config.inference_pool_available),
        (HTTP_ROUTE_KIND, config.gateway_api_available),
    ]
    return CHILD_KINDS + tuple(kind for kind, present in optional if present)


def plan_hash(md: MimoDeployment, plan: Plan, config: RenderConfig) -> str:
    """Hash of what the pods run, independent of how many there are: it changes exactly when a
    rollout is needed (precision, GPU, max-len, image, args...), not on scaling."""
    templates = [sts["spec"]["template"] for sts in render_statefulsets(md, plan, config, 1, "")]
    digest = hashlib.sha256(json.dumps(templates, sort_keys=True).encode()).hexdigest()
    return digest[:10]


def render_download_children(md: MimoDeployment, config: RenderConfig) -> list[dict[str, Any]]:
    """What the weights download needs before there is a plan (spec.model.configFrom: checkpoint):
    the claim, the Job and the NetworkPolicy that covers its pod."""
    children = [render_cache_claim(md), render_fetch_job(md, config), render_network_policy(md, config)]
    return [child for child in children if child is not None]


def render_children(
    md: MimoDeployment, plan: Plan, config: RenderConfig, digest: str | None = None
) -> list[dict[str, Any]]:
    """`digest` is `plan_hash(md, plan, config)` when the caller already has it (it renders the
    StatefulSets once more, so a reconcile computes it once and passes it in)."""
    replicas = md.spec.effective_replicas()
    digest = digest or plan_hash(md, plan, config)
    children: list[dict[str, Any] | None] = [
        render_cache_claim(md),
        render_fetch_job(md, config),
        render_api_service(md, plan),
        render_pods_service(md),
        render_network_policy(md, config),
        *render_statefulsets(md, plan, config, replicas, digest),
        render_pdb(md, replicas),
        render_hpa(md, plan, config),
        render_scaled_object(md, plan, config),
        render_pod_monitor(md, plan, config),
        render_inference_pool(md, plan, config),
        render_http_route(md, plan, config),
    ]
    return [child for child in children if child is not None]
