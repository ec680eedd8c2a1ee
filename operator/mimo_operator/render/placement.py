"""Where the vLLM pods may run, as one answer for everything that must land on the same nodes: the
StatefulSets' pod templates, and the per-node weights download Jobs of a node-local cache (which
fill exactly the nodes a vLLM pod could be scheduled to, and no other)."""

from __future__ import annotations

import copy
from typing import Any

from mimo_operator.api import MimoDeployment
from mimo_operator.models.gpus import GPU_CATALOG, GPU_RESOURCE, PRODUCT_LABEL_KEY
from mimo_operator.planner import Plan


def _product_label(md: MimoDeployment) -> str:
    if md.spec.gpu.product_label:
        return md.spec.gpu.product_label
    gpu = GPU_CATALOG.get(md.spec.gpu.type)
    return gpu.product_label if gpu else ""


def node_selector(md: MimoDeployment, plan: Plan) -> dict[str, str]:
    """The GPU product label (as GPU Feature Discovery sets it) and spec.placement.nodeSelector."""
    return {PRODUCT_LABEL_KEY[plan.gpu_vendor]: _product_label(md), **md.spec.placement.node_selector}


def tolerations(md: MimoDeployment, plan: Plan) -> list[dict[str, Any]]:
    """GPU nodes are commonly tainted with the GPU resource's name so only GPU workloads land there
    (NVIDIA GPU operator and AMD GPU operator docs); plus spec.placement.tolerations."""
    gpu = {"key": GPU_RESOURCE[plan.gpu_vendor], "operator": "Exists", "effect": "NoSchedule"}
    return [gpu, *copy.deepcopy(md.spec.placement.tolerations)]


def tolerates(pod_tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """Whether a pod with these tolerations may be scheduled onto (and stay on) a node with `taint`,
    by the rules of core/v1 Toleration: an empty key with Exists matches every key; an empty effect
    matches every effect; Equal (the default operator) compares the value."""
    for toleration in pod_tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if not key and operator == "Exists":
            return True
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def schedulable_for(node: dict[str, Any], pod_tolerations: list[dict[str, Any]]) -> bool:
    """A node (already matching the node selector) a pod with these tolerations may be scheduled to:
    not cordoned, and every NoSchedule or NoExecute taint tolerated (PreferNoSchedule only prefers)."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    hard = [t for t in spec.get("taints") or [] if t.get("effect") in ("NoSchedule", "NoExecute")]
    return all(tolerates(pod_tolerations, taint) for taint in hard)


def label_selector(labels: dict[str, str]) -> str:
    """A label selector string (`a=b,c=d`) for a LIST, from a nodeSelector."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
