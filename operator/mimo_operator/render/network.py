"""Services and the PodDisruptionBudget around the vLLM pods."""

from __future__ import annotations

from typing import Any

from mimo_operator.api import MimoDeployment, constants
from mimo_operator.planner import Plan
from mimo_operator.render import names


def render_api_service(md: MimoDeployment, plan: Plan) -> dict[str, Any]:
    """ClusterIP Service in front of the pods that serve the API (never named `vllm`: a Service of
    that name would inject VLLM_PORT into pods, which vLLM reads as its own setting)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.object_meta(md, names.api_service_name(md), "api"),
        "spec": {
            "type": "ClusterIP",
            "selector": names.leader_selector(md, plan.nodes_per_replica > 1),
            "ports": [{"name": "http", "port": constants.HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def render_pods_service(md: MimoDeployment) -> dict[str, Any]:
    """Headless Service giving every pod a DNS name; workers find their group's rank 0 through it
    before anything is ready, hence publishNotReadyAddresses."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": names.object_meta(md, names.pods_service_name(md), "pods"),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {constants.LABEL_DEPLOYMENT: md.metadata.name},
            "ports": [
                {"name": "http", "port": constants.HTTP_PORT, "targetPort": "http", "protocol": "TCP"},
                {
                    "name": "dist-master",
                    "port": constants.MASTER_PORT,
                    "targetPort": "dist-master",
                    "protocol": "TCP",
                },
            ],
        },
    }


def render_pdb(md: MimoDeployment, replicas: int) -> dict[str, Any] | None:
    """At most one pod away at a time, which takes down at most one whole replica (a multi-node group
    stops serving when any of its pods goes). None with a single replica: a budget there would block
    node drains forever."""
    if replicas <= 1:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": names.object_meta(md, md.metadata.name, "vllm"),
        "spec": {
            "maxUnavailable": 1,
            "selector": {
                "matchLabels": {
                    constants.LABEL_DEPLOYMENT: md.metadata.name,
                    constants.LABEL_COMPONENT: "vllm",
                }
            },
            # Pods still loading weights may be evicted: they serve nothing yet.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
