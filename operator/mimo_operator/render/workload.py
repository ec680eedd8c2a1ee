"""The vLLM StatefulSets: one with `replicas` pods when a replica fits a node, else one per replica group."""

from __future__ import annotations

import copy
from typing import Any

from mimo_operator.api import MimoDeployment, constants
from mimo_operator.models.gpus import GPU_RESOURCE
from mimo_operator.planner import Plan
from mimo_operator.render import names, placement
from mimo_operator.render.command import (
    API_KEY_ENV,
    NODE_RANK_ENV,
    data_parallel_per_node,
    group_entrypoint,
    vllm_serve_args,
)
from mimo_operator.render.config import ROCM_ENV, RenderConfig
from mimo_operator.render.monitoring import SCRAPE_ANNOTATIONS
from mimo_operator.render.probes import probes, startup_budget_seconds
from mimo_operator.render.security import (
    container_security_context,
    non_root_env,
    non_root_volumes,
    pod_security_context,
)
from mimo_operator.render.weights import cache_claim_name, node_copy_affinity, vllm_offline_env

MODEL_VOLUME = "model-cache"
SHM_VOLUME = "dshm"


def _env(md: MimoDeployment, plan: Plan, config: RenderConfig, multi_node: bool) -> list[dict[str, Any]]:
    spec = md.spec
    env: list[dict[str, Any]] = [
        # vLLM's distributed setup binds to this address; the pod IP is the one peers can reach.
        {"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        # vLLM waits this long for engine cores to report ready (default 600 s, too short to load
        # 300 GB); keep it at the startup budget so vLLM and the kubelet give up together.
        {"name": "VLLM_ENGINE_READY_TIMEOUT_S", "value": str(startup_budget_seconds(md, plan, config))},
        {"name": "HF_HOME", "value": f"{config.model_mount_path}/hf"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
    ]
    if plan.gpu_vendor == "amd":
        env += [{"name": name, "value": value} for name, value in ROCM_ENV.items()]
    if multi_node:
        env.append(
            {
                "name": NODE_RANK_ENV,
                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{names.POD_INDEX_LABEL}']"}},
            }
        )
    if spec.model.token_secret_ref:
        ref = spec.model.token_secret_ref
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    if spec.serving.api_key_secret_ref:
        ref = spec.serving.api_key_secret_ref
        env.append({"name": API_KEY_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    env += vllm_offline_env(md)
    env += non_root_env(config)
    return env + [copy.deepcopy(item) for item in spec.serving.env]


def _model_volume(md: MimoDeployment, plan: Plan) -> dict[str, Any]:
    cache = md.spec.model.cache
    if cache and cache.persistent_volume_claim:
        pvc = cache.persistent_volume_claim
        return {
            "name": MODEL_VOLUME,
            "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": pvc.read_only},
        }
    if cache and cache.volume_claim_template:
        return {"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": cache_claim_name(md)}}
    if cache and cache.host_path:
        return {"name": MODEL_VOLUME, "hostPath": {"path": cache.host_path.path, "type": "DirectoryOrCreate"}}
    # No cache: every start downloads the checkpoint again. Sized for it with room to spare.
    return {"name": MODEL_VOLUME, "emptyDir": {"sizeLimit": f"{int(plan.checkpoint_gib * 1.2) + 20}Gi"}}


def _affinity(md: MimoDeployment) -> dict[str, Any]:
    affinity = copy.deepcopy(md.spec.placement.affinity)
    copied = node_copy_affinity(md)
    if copied is not None:
        # Only onto nodes whose copy of the weights is complete. Node selector terms are ORed and a
        # term's expressions ANDed, so the requirement joins every term the user gave (or is the one).
        node = affinity.setdefault("nodeAffinity", {})
        required = node.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
        terms = required.setdefault("nodeSelectorTerms", []) or [{}]
        for term in terms:
            term["matchExpressions"] = [*term.get("matchExpressions", []), copied]
        required["nodeSelectorTerms"] = terms
    if "podAntiAffinity" not in affinity:
        # Spread pods of one deployment over nodes: a node failure then takes one replica, not two.
        affinity["podAntiAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {constants.LABEL_DEPLOYMENT: md.metadata.name}},
                        "topologyKey": "kubernetes.io/hostname",
                    },
                }
            ]
        }
    return affinity


def _container(
    md: MimoDeployment, plan: Plan, config: RenderConfig, master_addr: str | None
) -> dict[str, Any]:
    spec = md.spec
    multi_node = master_addr is not None
    args = vllm_serve_args(md, plan, config, master_addr)
    limits = {
        "cpu": spec.resources.cpu,
        "memory": spec.resources.memory,
        GPU_RESOURCE[plan.gpu_vendor]: str(plan.gpus_per_pod),
    }
    container: dict[str, Any] = {
        "name": "vllm",
        "image": spec.serving.image or config.image_for(plan.gpu_vendor),
        "imagePullPolicy": config.image_pull_policy,
        "args": args,
        "env": _env(md, plan, config, multi_node),
        "ports": [
            {"name": "http", "containerPort": constants.HTTP_PORT, "protocol": "TCP"},
            {"name": "dist-master", "containerPort": constants.MASTER_PORT, "protocol": "TCP"},
        ],
        "resources": {"requests": dict(limits), "limits": dict(limits)},
        "volumeMounts": [
            {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
            {"name": MODEL_VOLUME, "mountPath": config.model_mount_path},
            *non_root_volumes(config)[1],
        ],
        "lifecycle": {"preStop": {"sleep": {"seconds": 10}}},  # let endpoints drop the pod first
        "securityContext": container_security_context(config),
        **probes(md, plan, config, master_addr),
    }
    if data_parallel_per_node(plan):
        rpc = {"name": "dp-rpc", "containerPort": constants.DP_RPC_PORT, "protocol": "TCP"}
        container["ports"].append(rpc)
    if multi_node:
        container["command"] = ["/bin/sh", "-c", group_entrypoint(plan), "vllm"]
    else:
        container["command"] = ["vllm", "serve"]
    return container


def _pod_template(
    md: MimoDeployment, plan: Plan, config: RenderConfig, labels: dict[str, str], master_addr: str | None
) -> dict[str, Any]:
    spec = md.spec
    pod_spec: dict[str, Any] = {
        "containers": [_container(md, plan, config, master_addr)],
        "nodeSelector": placement.node_selector(md, plan),
        "tolerations": placement.tolerations(md, plan),
        "affinity": _affinity(md),
        "terminationGracePeriodSeconds": config.termination_grace_seconds,
        "securityContext": pod_security_context(config),
        "enableServiceLinks": False,  # a Service named like vLLM's env vars must never leak into them
        "automountServiceAccountToken": False,
        "volumes": [
            {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": spec.resources.shared_memory}},
            _model_volume(md, plan),
            *non_root_volumes(config)[0],
        ],
    }
    if spec.placement.priority_class_name:
        pod_spec["priorityClassName"] = spec.placement.priority_class_name
    return {"metadata": {"labels": labels, "annotations": dict(SCRAPE_ANNOTATIONS)}, "spec": pod_spec}


def _statefulset(
    md: MimoDeployment,
    name: str,
    replicas: int,
    labels: dict[str, str],
    selector: dict[str, str],
    template: dict[str, Any],
    plan_hash: str,
) -> dict[str, Any]:
    meta = names.object_meta(md, name, "vllm", **{constants.LABEL_PLAN_HASH: plan_hash})
    meta["labels"].update({k: v for k, v in labels.items() if k not in meta["labels"]})
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta,
        "spec": {
            "replicas": replicas,
            "serviceName": names.pods_service_name(md),
            "podManagementPolicy": "Parallel",  # all ranks must start together; order buys nothing
            "selector": {"matchLabels": selector},
            # StatefulSets never surge: a rolling update replaces pods in place, so it never asks for
            # more GPUs than the deployment already holds.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "revisionHistoryLimit": 5,
            "template": template,
        },
    }


def render_statefulsets(
    md: MimoDeployment, plan: Plan, config: RenderConfig, replicas: int, plan_hash: str
) -> list[dict[str, Any]]:
    base = {**names.common_labels(md), constants.LABEL_COMPONENT: "vllm"}
    if plan.nodes_per_replica == 1:
        labels = {**base, constants.LABEL_ROLE: constants.ROLE_LEADER}
        selector = {constants.LABEL_DEPLOYMENT: md.metadata.name, constants.LABEL_ROLE: constants.ROLE_LEADER}
        template = _pod_template(md, plan, config, labels, None)
        return [_statefulset(md, md.metadata.name, replicas, labels, selector, template, plan_hash)]
    groups = []
    for replica in range(replicas):
        name = names.group_statefulset_name(md, replica)
        labels = {**base, constants.LABEL_ROLE: constants.ROLE_GROUP, constants.LABEL_REPLICA: str(replica)}
        selector = {constants.LABEL_DEPLOYMENT: md.metadata.name, constants.LABEL_REPLICA: str(replica)}
        master = f"{name}-0.{names.pods_service_name(md)}.{md.metadata.namespace}.svc"
        template = _pod_template(md, plan, config, labels, master)
        groups.append(_statefulset(md, name, plan.nodes_per_replica, labels, selector, template, plan_hash))
    return groups
