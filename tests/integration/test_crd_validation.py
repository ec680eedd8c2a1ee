"""The committed CRD, installed into a real kube-apiserver, accepts the examples and refuses bad input.

The unit tests check the schema's shape; only the API server can say whether it accepts the CRD (a
non-structural schema or a CEL rule over the cost budget is refused at install) and what a user
sees at `kubectl apply`. Each refusal must name the field, or the user has to guess.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_operator.api.constants import CRD_NAME
from mimo_sandbox.cluster import Sandbox
from tests.integration.conftest import apply_strict, manifest_namespace

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def crd(sandbox: Sandbox, mimo_crd: str) -> Sandbox:
    """The sandbox with the committed CRD installed and served."""
    return sandbox


@pytest.fixture(scope="module")
def ns(crd: Sandbox) -> Iterator[str]:
    with manifest_namespace(crd, "crd-validation") as name:
        yield name


apply = apply_strict


def valid(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.mimo.dev/v1alpha1",
        "kind": "MimoDeployment",
        "metadata": {"name": name},
        "spec": {"precision": "fp8", "gpu": {"type": "H100-80GB"}},
    }


def test_crd_is_structural_and_established(crd: Sandbox) -> None:
    conditions = json.loads(crd.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)["status"]["conditions"]
    by_type = {c["type"]: c for c in conditions}
    assert by_type["Established"]["status"] == "True"
    assert by_type["NamesAccepted"]["status"] == "True"
    assert "NonStructuralSchema" not in by_type, by_type["NonStructuralSchema"]["message"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_accepted(crd: Sandbox, ns: str, path: Path) -> None:
    proc = crd.kubectl("apply", "--server-side", "--validate=strict", "-n", ns, "-f", str(path), check=False)
    assert proc.returncode == 0, proc.stderr
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    stored = json.loads(crd.kubectl("get", "mimo", name, "-n", ns, "-o", "json").stdout)
    # The API server stores what the user wrote, plus spec.replicas (the one schema default, which the
    # scale subresource needs); every other default is the operator's business.
    assert stored["spec"] == {"replicas": 1, **yaml.safe_load(path.read_text())["spec"]}


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = body
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def change(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda body: set_path(body, path, value)


def custom_gpu_without_memory(body: dict[str, Any]) -> None:
    body["spec"]["gpu"] = {"type": "custom", "productLabel": "NVIDIA-Future"}


def both_caches(body: dict[str, Any]) -> None:
    body["spec"]["model"] = {
        "cache": {"persistentVolumeClaim": {"claimName": "w"}, "hostPath": {"path": "/mnt/w"}}
    }


# (id, how to break a valid object, text the API server's refusal must contain)
INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("unknown-precision", change("spec.precision", "fp4"), "spec.precision"),
    ("max-model-len-too-long", change("spec.context.maxModelLen", 1048577), "spec.context.maxModelLen"),
    ("max-model-len-word", change("spec.context.maxModelLen", "big"), "spec.context.maxModelLen"),
    (
        "autoscaling-min-above-max",
        change("spec.autoscaling", {"minReplicas": 3, "maxReplicas": 2}),
        "spec.autoscaling.maxReplicas",
    ),
    ("autoscaling-min-zero", change("spec.autoscaling", {"minReplicas": 0}), "spec.autoscaling.minReplicas"),
    (
        "autoscaling-min-above-default-max",
        change("spec.autoscaling", {"minReplicas": 5}),
        "spec.autoscaling.minReplicas",
    ),
    ("tensor-3", change("spec.parallelism", {"tensor": 3}), "spec.parallelism.tensor"),
    ("tensor-16", change("spec.parallelism", {"tensor": 16}), "spec.parallelism.tensor"),
    ("gpu-memory-utilization-0.99", change("spec.gpuMemoryUtilization", 0.99), "spec.gpuMemoryUtilization"),
    ("gpu-memory-utilization-0.3", change("spec.gpuMemoryUtilization", 0.3), "spec.gpuMemoryUtilization"),
    ("gpu-memory-utilization-0.5", change("spec.gpuMemoryUtilization", 0.5), "spec.gpuMemoryUtilization"),
    (
        "extra-args-tensor-parallel",
        change("spec.serving", {"extraArgs": ["--tensor-parallel-size=4"]}),
        "spec.parallelism.tensor",
    ),
    (
        "extra-args-max-model-len-split",
        change("spec.serving", {"extraArgs": ["--max-model-len", "1000"]}),
        "spec.serving.extraArgs",
    ),
    (
        "extra-args-max-model-len-underscore",
        change("spec.serving", {"extraArgs": ["--max_model_len=1000"]}),
        "spec.serving.extraArgs",
    ),
    (
        "extra-args-max-model-len-abbreviated",
        change("spec.serving", {"extraArgs": ["--max-model=1000"]}),
        "spec.context.maxModelLen",
    ),
    ("extra-args-tp-alias", change("spec.serving", {"extraArgs": ["-tp", "4"]}), "spec.serving.extraArgs"),
    (
        "extra-args-api-key",
        change("spec.serving", {"extraArgs": ["--api-key=x"]}),
        "spec.serving.apiKeySecretRef",
    ),
    ("extra-args-port", change("spec.serving", {"extraArgs": ["--port", "9000"]}), "spec.serving.extraArgs"),
    ("name-50-characters", change("metadata.name", "m" * 50), "metadata.name"),
    ("name-with-dot", change("metadata.name", "mimo.v2"), "metadata.name"),
    ("served-name-with-space", change("spec.model", {"servedName": "mimo v2"}), "spec.model.servedName"),
    ("revision-with-space", change("spec.model", {"revision": "main branch"}), "spec.model.revision"),
    ("custom-gpu-without-memory", custom_gpu_without_memory, "spec.gpu.memoryGiB"),
    ("two-caches", both_caches, "spec.model.cache"),
    ("unknown-spec-field", change("spec.gpuCount", 8), "spec.gpuCount"),
    ("replicas-negative", change("spec.replicas", -1), "spec.replicas"),
    ("min-concurrency-negative", change("spec.context.minConcurrency", -1), "spec.context.minConcurrency"),
    ("cpu-not-a-quantity", change("spec.resources", {"cpu": "lots"}), "spec.resources.cpu"),
    (
        "startup-budget-too-short",
        change("spec.probes", {"startupBudgetSeconds": 10}),
        "spec.probes.startupBudgetSeconds",
    ),
    (
        "startup-budget-word",
        change("spec.probes", {"startupBudgetSeconds": "long"}),
        "spec.probes.startupBudgetSeconds",
    ),
]


@pytest.mark.parametrize(("case", "breaks", "expected"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_object_is_refused_naming_the_field(
    crd: Sandbox, ns: str, case: str, breaks: Callable[[dict[str, Any]], None], expected: str
) -> None:
    body = copy.deepcopy(valid(f"bad-{case}".replace(".", "-")[:42]))
    breaks(body)
    proc = apply(crd, ns, body)
    assert proc.returncode != 0, f"{case} was accepted:\n{yaml.safe_dump(body)}"
    assert expected in proc.stderr, proc.stderr
    print(f"{case}: {proc.stderr.strip()}")
    # Refused by the server (schema, CEL, or strict field validation), not by a client-side check.
    assert "is invalid" in proc.stderr or "Error from server" in proc.stderr, proc.stderr


def test_autoscaling_refusal_message_names_both_bounds(crd: Sandbox, ns: str) -> None:
    body = valid("min-above-max")
    body["spec"]["autoscaling"] = {"minReplicas": 3, "maxReplicas": 2}
    proc = apply(crd, ns, body)
    assert "spec.autoscaling.minReplicas" in proc.stderr
    assert "spec.autoscaling.maxReplicas" in proc.stderr


def test_edge_values_are_accepted(crd: Sandbox, ns: str) -> None:
    body = valid("edges")
    body["spec"].update(
        {
            "context": {"maxModelLen": 262144, "minConcurrency": 1},
            "gpuMemoryUtilization": 0.98,
            "parallelism": {"tensor": 8, "pipeline": 2},
            "gpu": {"type": "custom", "memoryGiB": 96, "perNode": 8},
            "serving": {"extraArgs": ["--max-num-seqs=64", "--enable-prefix-caching"]},
            "probes": {"startupBudgetSeconds": "auto"},
            "replicas": 0,
        }
    )
    body["metadata"]["name"] = "e" * 42
    proc = apply(crd, ns, body)
    assert proc.returncode == 0, proc.stderr


def test_replicas_beside_autoscaling_is_accepted_and_scale_subresource_is_validated(
    crd: Sandbox, ns: str
) -> None:
    body = valid("scaled")
    body["spec"]["replicas"] = 1
    body["spec"]["autoscaling"] = {"minReplicas": 1, "maxReplicas": 4}
    proc = apply(crd, ns, body)
    assert proc.returncode == 0, proc.stderr

    # What an HPA does: write spec.replicas through the scale subresource.
    crd.kubectl("scale", "mimo/scaled", "-n", ns, "--replicas=3")
    replicas = crd.kubectl("get", "mimo", "scaled", "-n", ns, "-o", "jsonpath={.spec.replicas}").stdout
    assert replicas == "3"

    # The scale subresource runs the CRD's schema too: 1001 passes Scale's own checks but not spec.replicas.
    refused = crd.kubectl("scale", "mimo/scaled", "-n", ns, "--replicas=1001", check=False)
    assert refused.returncode != 0
    assert "spec.replicas" in refused.stderr, refused.stderr
    assert crd.kubectl("get", "mimo", "scaled", "-n", ns, "-o", "jsonpath={.spec.replicas}").stdout == "3"


def test_status_and_printer_columns(crd: Sandbox, ns: str) -> None:
    assert apply(crd, ns, valid("columns")).returncode == 0
    status = {
        "observedGeneration": 1,
        "phase": "Ready",
        "conditions": [
            {
                "type": "Planned",
                "status": "True",
                "reason": "Planned",
                "message": "",
                "lastTransitionTime": "2025-01-01T00:00:00Z",
            }
        ],
        "plan": {
            "gpusPerReplica": 8,
            "gpusPerPod": 8,
            "nodesPerReplica": 1,
            "tensorParallel": 8,
            "pipelineParallel": 1,
            "dataParallel": 1,
            "expertParallel": False,
            "mtp": True,
            "maxModelLen": 262144,
            "weightsGiBPerGpu": 36.4,
            "reservedGiBPerGpu": 5.2,
            "kvCacheGiBPerGpu": 30.0,
            "kvCacheTokens": 5599357,
            "maxConcurrentAtMaxLen": 21,
            "summary": "fp8 on 8x H100-80GB: TP8 +MTP",
            "hash": "1f2e3d4c",
        },
        "replicas": 1,
        "readyReplicas": 1,
        "ready": "1/1",
        "selector": "serving.mimo.dev/deployment=columns,serving.mimo.dev/role=leader",
    }
    crd.kubectl(
        "patch",
        "mimo",
        "columns",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    stored = json.loads(crd.kubectl("get", "mimo", "columns", "-n", ns, "-o", "json").stdout)
    assert stored["status"] == status

    header, row = crd.kubectl("get", "mimo", "columns", "-n", ns, "-o", "wide").stdout.splitlines()
    assert header.split() == ["NAME", "PHASE", "READY", "GPUS", "MAX-LEN", "WEIGHTS", "AGE", "PLAN"]
    assert row.split()[:5] == ["columns", "Ready", "1/1", "8", "262144"]
    assert row.endswith("fp8 on 8x H100-80GB: TP8 +MTP")
    narrow = crd.kubectl("get", "mimod", "columns", "-n", ns).stdout.splitlines()[0].split()
    assert narrow == ["NAME", "PHASE", "READY", "GPUS", "MAX-LEN", "WEIGHTS", "AGE"]

    # The scale subresource reads status.replicas and status.selector for autoscalers.
    scale = json.loads(
        crd.kubectl(
            "get", "--raw", f"/apis/serving.mimo.dev/v1alpha1/namespaces/{ns}/mimodeployments/columns/scale"
        ).stdout
    )
    assert scale["status"] == {"replicas": 1, "selector": status["selector"]}


def test_kubectl_explain_shows_the_model_docstrings(crd: Sandbox) -> None:
    out = crd.kubectl("explain", "mimodeployment.spec.context.maxModelLen").stdout
    assert "Longest request in tokens" in out
    out = " ".join(crd.kubectl("explain", "mimo.spec.serving.extraArgs").stdout.split())
    assert "Flags the operator sets itself are refused" in out
