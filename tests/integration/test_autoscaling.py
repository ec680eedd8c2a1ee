"""Autoscaling and monitoring against the sandbox: the operator stays the only writer of pod counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import wait_for
from tests.integration.conftest import EXAMPLES, get_json
from tests.integration.operator_process import OperatorProcess

pytestmark = pytest.mark.sandbox

# The parts of KEDA's and the Prometheus Operator's CRDs the operator's objects must satisfy: the
# fields both projects require, typed as upstream types them.
KEDA_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "scaledobjects.keda.sh"},
    "spec": {
        "group": "keda.sh",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1alpha1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["scaleTargetRef", "triggers"],
                                "x-kubernetes-preserve-unknown-fields": True,
                                "properties": {
                                    "scaleTargetRef": {
                                        "type": "object",
                                        "required": ["name"],
                                        "properties": {
                                            "apiVersion": {"type": "string"},
                                            "kind": {"type": "string"},
                                            "name": {"type": "string"},
                                        },
                                    },
                                    "minReplicaCount": {"type": "integer", "format": "int32"},
                                    "maxReplicaCount": {"type": "integer", "format": "int32"},
                                    "triggers": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["metadata", "type"],
                                            "properties": {
                                                "type": {"type": "string"},
                                                "metricType": {"type": "string"},
                                                "metadata": {
                                                    "type": "object",
                                                    "additionalProperties": {"type": "string"},
                                                },
                                            },
                                        },
                                    },
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}
POD_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "podmonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "names": {"kind": "PodMonitor", "plural": "podmonitors", "singular": "podmonitor"},
        "scope": "Namespaced",
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
                                "required": ["selector"],
                                "x-kubernetes-preserve-unknown-fields": True,
                                "properties": {
                                    "selector": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                    "podMetricsEndpoints": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "port": {"type": "string"},
                                                "path": {"type": "string"},
                                                "interval": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            }
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def optional_crds(sandbox: Sandbox) -> Iterator[None]:
    """KEDA's and the Prometheus Operator's CRDs, removed afterwards so other tests see neither."""
    for crd in (KEDA_CRD, POD_MONITOR_CRD):
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(crd))
        sandbox.kubectl("wait", "--for=condition=Established", f"crd/{crd['metadata']['name']}")
    try:
        yield
    finally:
        for crd in (KEDA_CRD, POD_MONITOR_CRD):
            sandbox.kubectl("delete", "crd", crd["metadata"]["name"], "--wait=true", check=False)


def _apply(sandbox: Sandbox, ns: str, **spec: Any) -> None:
    doc = {
        "apiVersion": "serving.mimo.dev/v1alpha1",
        "kind": "MimoDeployment",
        "metadata": {"name": "mimo-auto", "namespace": ns},
        "spec": {"gpu": {"type": "H200-141GB"}, **spec},
    }
    sandbox.kubectl(
        "apply",
        "--server-side",
        "--field-manager=user",
        "--force-conflicts",
        "-f",
        "-",
        input=json.dumps(doc),
    )


def _conditions(sandbox: Sandbox, ns: str) -> dict[str, Any]:
    obj = get_json(sandbox, "-n", ns, "get", "mimo", "mimo-auto")
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def test_hpa_targets_the_deployment_and_the_operator_follows_its_writes(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    _apply(
        sandbox,
        namespace,
        autoscaling={"minReplicas": 1, "maxReplicas": 2, "metric": "queueDepth", "target": "5"},
    )
    wait_for(
        lambda: sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto", check=False).returncode == 0,
        timeout=30,
        description="HorizontalPodAutoscaler created",
    )
    table = sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto").stdout
    assert "MimoDeployment/mimo-auto" in table
    hpa = get_json(sandbox, "-n", namespace, "get", "hpa", "mimo-auto")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"

    # Write replicas through the scale subresource, as the HPA controller does.
    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        "mimo",
        "mimo-auto",
        "--subresource=scale",
        "--type=merge",
        "-p",
        '{"spec":{"replicas":2}}',
    )
    wait_for(
        lambda: get_json(sandbox, "-n", namespace, "get", "sts", "mimo-auto")["spec"]["replicas"] == 2,
        timeout=30,
        description="StatefulSet follows the scale write",
    )
    scale_path = f"/apis/serving.mimo.dev/v1alpha1/namespaces/{namespace}/mimodeployments/mimo-auto/scale"

    def read_scale() -> Any:
        return json.loads(sandbox.kubectl("get", "--raw", scale_path).stdout)

    wait_for(
        lambda: (
            read_scale()["status"].get("selector")
            == "serving.mimo.dev/deployment=mimo-auto,serving.mimo.dev/role=leader"
        ),
        timeout=30,
        description="scale subresource reports the leader selector",
    )
    scale = read_scale()
    assert scale["spec"]["replicas"] == 2
    # Outside [min, max] the operator clamps: a write of 5 runs 2.
    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        "mimo",
        "mimo-auto",
        "--subresource=scale",
        "--type=merge",
        "-p",
        '{"spec":{"replicas":5}}',
    )
    wait_for(
        lambda: (
            get_json(sandbox, "-n", namespace, "get", "mimo", "mimo-auto")["status"].get("replicas") == 2
            and get_json(sandbox, "-n", namespace, "get", "sts", "mimo-auto")["spec"]["replicas"] == 2
        ),
        timeout=30,
        description="replicas clamped to maxReplicas",
    )

    # Without a metrics adapter the HPA cannot read vLLM's queue; the operator says why.
    cond = wait_for(
        lambda: (
            (c := _conditions(sandbox, namespace).get("Autoscaling"))
            and c["reason"] not in ("AutoscalerPending",)
            and c
        ),
        timeout=60,
        description="Autoscaling condition from the HPA's status",
    )
    assert cond["status"] == "False" and "Prometheus Adapter" in cond["message"]

    # The user takes autoscaling out of git: server-side apply by the same manager removes the field.
    _apply(sandbox, namespace, replicas=1)
    wait_for(
        lambda: sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto", check=False).returncode != 0,
        timeout=30,
        description="HorizontalPodAutoscaler deleted",
    )
    wait_for(
        lambda: "Autoscaling" not in _conditions(sandbox, namespace),
        timeout=30,
        description="autoscaling conditions removed",
    )


def test_keda_and_pod_monitor_only_when_their_crds_exist(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess, optional_crds: None
) -> None:
    # The operator rediscovers optional APIs every 60 s; a fresh operator sees the CRDs at once.
    operator.kill()
    fresh = OperatorProcess(sandbox, namespace, operator.log_path.parent).start()
    try:
        _apply(sandbox, namespace, autoscaling={"engine": "keda", "maxReplicas": 3})
        scaled = wait_for(
            lambda: json.loads(
                sandbox.kubectl(
                    "-n", namespace, "get", "scaledobject", "mimo-auto", "-o", "json", check=False
                ).stdout
                or "null"
            ),
            timeout=30,
            description="ScaledObject created",
        )
        assert scaled["spec"]["scaleTargetRef"] == {
            "apiVersion": "serving.mimo.dev/v1alpha1",
            "kind": "MimoDeployment",
            "name": "mimo-auto",
        }
        assert scaled["spec"]["triggers"][0]["type"] == "prometheus"
        assert sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto", check=False).returncode != 0
        monitor = get_json(sandbox, "-n", namespace, "get", "podmonitor", "mimo-auto")
        assert monitor["spec"]["selector"]["matchLabels"]["serving.mimo.dev/deployment"] == "mimo-auto"
        wait_for(
            lambda: _conditions(sandbox, namespace).get("Autoscaling", {}).get("status") == "True",
            timeout=30,
            description="Autoscaling condition True with KEDA present",
        )
    finally:
        fresh.kill()


def test_keda_missing_is_reported_and_nothing_autoscales(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    _apply(sandbox, namespace, autoscaling={"engine": "keda"})
    cond = wait_for(
        lambda: _conditions(sandbox, namespace).get("Autoscaling"),
        timeout=30,
        description="Autoscaling condition",
    )
    assert (cond["status"], cond["reason"]) == ("False", "KedaMissing")
    events = get_json(
        sandbox, "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=mimo-auto"
    )
    assert any(e["reason"] == "KedaMissing" and e["type"] == "Warning" for e in events["items"])
    assert sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto", check=False).returncode != 0
    # No PodMonitor CRD here: the pods carry scrape annotations instead.
    pod = wait_for(
        lambda: get_json(sandbox, "-n", namespace, "get", "pods")["items"],
        timeout=30,
        description="vLLM pod created",
    )[0]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_operator_metrics_move_with_reconciles(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    before = operator.metrics()
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h200.yaml"))
    wait_for(
        lambda: operator.metrics().get('mimo_operator_deployments{phase="Ready"}') == 1,
        timeout=60,
        description="deployments{phase=Ready} gauge at 1",
    )
    after = operator.metrics()
    changed = 'mimo_operator_reconciles_total{result="changed"}'
    assert after[changed] > before.get(changed, 0)
    assert after['mimo_operator_api_requests_total{code="201",resource="statefulsets",verb="apply"}'] >= 1
    assert (
        after[f'mimo_operator_gpus_planned{{deployment="mimo-fp8-h200",deployment_namespace="{namespace}"}}']
        == 4
    )
    assert (
        after[f'mimo_operator_gpus_ready{{deployment="mimo-fp8-h200",deployment_namespace="{namespace}"}}']
        == 4
    )
    assert after['mimo_operator_reconcile_duration_seconds_count{result="changed"}'] >= 1
