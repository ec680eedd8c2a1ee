"""Deterministic names and labels of every child, derived from the MimoDeployment alone."""

from __future__ import annotations

from typing import Any

from mimo_operator.api import MimoDeployment, constants

# Set by the StatefulSet controller on every pod (PodIndexLabel, GA in Kubernetes 1.32).
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def api_service_name(md: MimoDeployment) -> str:
    return md.metadata.name


def pods_service_name(md: MimoDeployment) -> str:
    return f"{md.metadata.name}-pods"


def group_statefulset_name(md: MimoDeployment, replica: int) -> str:
    """StatefulSet of one multi-node replica group."""
    return f"{md.metadata.name}-r{replica}"


def common_labels(md: MimoDeployment) -> dict[str, str]:
    return {
        constants.LABEL_NAME: "mimo-v2-flash",
        constants.LABEL_INSTANCE: md.metadata.name,
        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
        constants.LABEL_PART_OF: "mimo-operator",
        constants.LABEL_DEPLOYMENT: md.metadata.name,
    }


def owner_reference(md: MimoDeployment) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "name": md.metadata.name,
        "uid": md.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def object_meta(md: MimoDeployment, name: str, component: str, **extra_labels: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": md.metadata.namespace,
        "labels": {**common_labels(md), constants.LABEL_COMPONENT: component, **extra_labels},
        "ownerReferences": [owner_reference(md)],
    }


def leader_selector(md: MimoDeployment, multi_node: bool) -> dict[str, str]:
    """Pods that serve the API: every pod of a single-node StatefulSet, pod 0 of each multi-node group."""
    if multi_node:
        return {constants.LABEL_DEPLOYMENT: md.metadata.name, POD_INDEX_LABEL: "0"}
    return {constants.LABEL_DEPLOYMENT: md.metadata.name, constants.LABEL_ROLE: constants.ROLE_LEADER}


def selector_string(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
