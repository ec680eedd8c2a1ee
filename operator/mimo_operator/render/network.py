"""Services, the PodDisruptionBudget and the NetworkPolicy around the vLLM pods."""

from __future__ import annotations

from typing import Any

from mimo_operator.api import MimoDeployment, constants
from mimo_operator.planner import Plan
from mimo_operator.render import names
from mimo_operator.render.config import RenderConfig
from mimo_operator.render.weights import FETCHER_PROGRESS_PORT, fetch_mode, shared_fetch_instance


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
            "selector": {"matchLabels": _vllm_pods(md)},
            # Pods still loading weights may be evicted: they serve nothing yet.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _vllm_pods(md: MimoDeployment) -> dict[str, str]:
    return {constants.LABEL_DEPLOYMENT: md.metadata.name, constants.LABEL_COMPONENT: "vllm"}


def gateway_peers(md: MimoDeployment) -> list[dict[str, Any]]:
    """The namespace of the route's Gateway, whose proxies forward requests to the API port."""
    route = md.spec.route
    if route is None:
        return []
    namespace = route.gateway.namespace or md.metadata.namespace
    return [{"namespaceSelector": {"matchLabels": {constants.LABEL_NAMESPACE_NAME: namespace}}}]


def _all_pods(md: MimoDeployment) -> dict[str, Any]:
    """The vLLM pods and the weights download Job's pod (which lacks LABEL_DEPLOYMENT on purpose);
    a download shared with other deployments of the claim is labelled after the claim instead."""
    managed = {constants.LABEL_MANAGED_BY: constants.MANAGED_BY}
    shared = shared_fetch_instance(md)
    if shared is None:
        return {"matchLabels": {constants.LABEL_INSTANCE: md.metadata.name, **managed}}
    instances = {"key": constants.LABEL_INSTANCE, "operator": "In", "values": [md.metadata.name, shared]}
    return {"matchLabels": managed, "matchExpressions": [instances]}


def render_network_policy(md: MimoDeployment, config: RenderConfig) -> dict[str, Any] | None:
    """Ingress to the deployment's pods: every port between its vLLM pods (the ranks of a multi-node
    replica talk NCCL on ports chosen at run time, and torch.distributed's master port), the API port
    from the installer's peers, the spec's apiClients and the route's Gateway, and the download pod's
    progress port from the operator, nothing else. Egress is left open: pods download weights and reach their
    peers. None when the operator is configured without one."""
    peers = config.network_policy_api_from
    if peers is None:
        return None
    api_from = (
        [dict(peer) for peer in peers]
        + [client.peer() for client in md.spec.serving.api_clients]
        + gateway_peers(md)
    )
    ingress: list[dict[str, Any]] = [{"from": [{"podSelector": {"matchLabels": _vllm_pods(md)}}]}]
    if api_from:  # an empty `from` would admit every source, so no peers means no rule
        ingress.append({"from": api_from, "ports": [{"protocol": "TCP", "port": constants.HTTP_PORT}]})
    if config.operator_peer is not None and fetch_mode(md) == "job":
        # The operator reads the download pod's progress while the Job runs (handlers/weights.py).
        port = {"protocol": "TCP", "port": FETCHER_PROGRESS_PORT}
        ingress.append({"from": [dict(config.operator_peer)], "ports": [port]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": names.object_meta(md, md.metadata.name, "vllm"),
        "spec": {
            "podSelector": _all_pods(md),
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }
