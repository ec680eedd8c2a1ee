"""The sandbox control plane behaves like a real GPU cluster where the operator depends on it.

Each test checks one property the operator's own tests will rely on: GPU-aware scheduling onto
labelled kwok nodes, StatefulSets and garbage collection, RBAC enforcement for a ServiceAccount,
and CRD structural schemas with CEL validation.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from mimo_operator.models.gpus import GPU_CATALOG
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pools import LABEL_GPU_PRODUCT
from mimo_sandbox.pytest_plugin import NotYet, wait_for

pytestmark = pytest.mark.sandbox

H100 = GPU_CATALOG["H100-80GB"].product_label


def gpu_pod_spec(gpus: int, product: str) -> dict[str, Any]:
    return {
        "nodeSelector": {LABEL_GPU_PRODUCT: product},
        "containers": [
            {
                "name": "vllm",
                # kwok never pulls images; the name only has to be valid.
                "image": "registry.invalid/vllm:sandbox",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
            }
        ],
    }


def pod_condition(pod: Any, type_: str) -> Any:
    for cond in pod.status.conditions or []:
        if cond.type == type_:
            return cond
    return None


def test_gpu_pod_lands_on_h100_and_oversized_pod_stays_pending(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_pod(namespace, {"metadata": {"name": "eight-gpus"}, "spec": gpu_pod_spec(8, H100)})
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "sixteen-gpus"}, "spec": gpu_pod_spec(16, H100)}
    )

    def ready_pod() -> Any:
        pod = core.read_namespaced_pod("eight-gpus", namespace)
        cond = pod_condition(pod, "Ready")
        return pod if cond is not None and cond.status == "True" else NotYet((pod.status.phase, cond))

    pod = wait_for(ready_pod, timeout=60, description="pod eight-gpus to be Ready")
    assert pod.status.phase == "Running"
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels[LABEL_GPU_PRODUCT] == H100

    def unschedulable() -> Any:
        pod = core.read_namespaced_pod("sixteen-gpus", namespace)
        cond = pod_condition(pod, "PodScheduled")
        return cond if cond is not None and cond.reason == "Unschedulable" else NotYet(cond)

    cond = wait_for(unschedulable, timeout=60, description="pod sixteen-gpus to be reported Unschedulable")
    assert cond.status == "False"
    assert "nvidia.com/gpu" in cond.message
    assert core.read_namespaced_pod("sixteen-gpus", namespace).status.phase == "Pending"


def test_statefulset_spreads_over_h100_nodes_and_is_garbage_collected(
    api_client: Any, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    labels = {"app": "mimo-test"}
    apps.create_namespaced_stateful_set(
        namespace,
        {
            "metadata": {"name": "mimo"},
            "spec": {
                "replicas": 2,
                "serviceName": "mimo",
                "podManagementPolicy": "Parallel",
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": gpu_pod_spec(8, H100)},
            },
        },
    )

    def running_pods() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="app=mimo-test").items
        running = [p for p in pods if p.status.phase == "Running"]
        return running if len(running) == 2 else NotYet([(p.metadata.name, p.status.phase) for p in pods])

    # Generous timeout: a previous test's GPU pod may still be releasing an H100 node.
    pods = wait_for(running_pods, timeout=90, description="2 Running StatefulSet pods")
    nodes = {p.spec.node_name for p in pods}
    assert len(nodes) == 2, f"8-GPU pods must land on different 8-GPU nodes, got {nodes}"
    for node_name in nodes:
        assert core.read_node(node_name).metadata.labels[LABEL_GPU_PRODUCT] == H100

    apps.delete_namespaced_stateful_set("mimo", namespace, propagation_policy="Background")
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=mimo-test").items,
        timeout=60,
        description="the garbage collector to delete the StatefulSet's pods",
    )


def test_rbac_denies_serviceaccount_until_bound(api_client: Any, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    token = core.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"audiences": [], "expirationSeconds": 600}}
    ).status.token

    admin_cfg = api_client.configuration
    cfg = client.Configuration()
    cfg.host = admin_cfg.host
    cfg.ssl_ca_cert = admin_cfg.ssl_ca_cert
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(cfg) as sa_client:
        sa_apps = client.AppsV1Api(sa_client)
        with pytest.raises(ApiException) as denied:
            sa_apps.list_namespaced_stateful_set(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:reader" in denied.value.body

        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "statefulset-reader"},
                "rules": [
                    {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get", "list", "watch"]}
                ],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "reader-reads-statefulsets"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "statefulset-reader",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        )

        def allowed() -> Any:
            try:
                return sa_apps.list_namespaced_stateful_set(namespace)
            except ApiException as exc:
                if exc.status == 403:
                    return None  # the authorizer's informer has not seen the binding yet
                raise

        result = wait_for(allowed, timeout=30, description="the RoleBinding to take effect")
        assert result.items == []


def test_crd_cel_rule_rejects_invalid_object(api_client: Any, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    # Unique per test run: CRDs are cluster-scoped and outlive the namespace.
    group = f"{namespace}.sandbox.mimo.test"
    plural = "widgets"
    ext.create_custom_resource_definition(
        {
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": "widget", "kind": "Widget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "required": ["replicas", "maxReplicas"],
                                        "properties": {
                                            "replicas": {"type": "integer", "minimum": 0},
                                            "maxReplicas": {"type": "integer", "minimum": 1},
                                        },
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "self.replicas <= self.maxReplicas",
                                                "message": "replicas must not exceed maxReplicas",
                                            }
                                        ],
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        }
    )
    try:

        def widget(name: str, replicas: int, max_replicas: int) -> dict[str, Any]:
            return {
                "apiVersion": f"{group}/v1",
                "kind": "Widget",
                "metadata": {"name": name},
                "spec": {"replicas": replicas, "maxReplicas": max_replicas},
            }

        def create_valid() -> Any:
            # Right after Established the new resource can briefly 404 while its storage is wired up.
            try:
                return custom.create_namespaced_custom_object(
                    group, "v1", namespace, plural, widget("ok", 1, 2)
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        wait_for(create_valid, timeout=30, description="a valid Widget to be accepted")

        with pytest.raises(ApiException) as rejected:
            custom.create_namespaced_custom_object(group, "v1", namespace, plural, widget("bad", 3, 2))
        assert rejected.value.status == 422
        assert "replicas must not exceed maxReplicas" in rejected.value.body
    finally:
        ext.delete_custom_resource_definition(f"{plural}.{group}")


def test_sandbox_reports_its_start_time(sandbox: Sandbox, record_property: Any) -> None:
    # The session fixture started (or attached to) the sandbox; its start time is part of the report.
    record_property("sandbox_startup_seconds", sandbox.startup_seconds)
    print(f"sandbox startup: {sandbox.startup_seconds}s, server {sandbox.server}")
    nodes = sandbox.kubectl("get", "nodes", "-o", "name").stdout.split()
    assert sorted(n.removeprefix("node/") for n in nodes) == sorted(sandbox.node_names)
