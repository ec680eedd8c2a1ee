"""The author policy at `kubectl apply` (templates/author-policy.yaml, a ValidatingAdmissionPolicy)
against the sandbox's real API server: under several chart settings, the API server refuses exactly the
MimoDeployments the operator's own check (api/policy.py) refuses, naming the same field, and admits the
rest. The policy is rendered by helm for the test's namespace only and applied with kubectl, so the
MimoDeployments of other tests are never judged by it."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.api.policy import AuthorPolicy
from mimo_operator.render import RenderConfig
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import NotYet, wait_for
from tests.e2e.conftest import CHART, EXAMPLES, get_json, helm, release_name

pytestmark = pytest.mark.sandbox

# (helm --set arguments, the same policy as the operator's settings)
POLICIES = [
    pytest.param([], AuthorPolicy(), id="default"),
    pytest.param(
        [
            "--set",
            "policy.allowedImages={registry.local/,myorg/,ubuntu,localhost:5000/vllm}",
            "--set",
            "policy.allowHostPath=true",
            "--set",
            "policy.allowedPriorityClasses={gpu-high}",
        ],
        AuthorPolicy(
            allowed_images=("registry.local/", "myorg/", "ubuntu", "localhost:5000/vllm"),
            allow_host_path=True,
            allowed_priority_classes=("gpu-high",),
        ),
        id="mirrors-hostpath-one-priority",
    ),
    pytest.param(
        [
            "--set",
            "policy.allowedImages={*}",
            "--set",
            "policy.allowEnvSecrets=true",
            "--set",
            "policy.allowedPriorityClasses={*}",
        ],
        AuthorPolicy(allowed_images=("*",), allow_env_secrets=True, allowed_priority_classes=("*",)),
        id="anything-but-hostpath",
    ),
]

IMAGES = [
    "vllm/vllm-openai:v0.33.0",
    "docker.io/vllm/vllm-openai:nightly",
    "vllm/vllm-openai@sha256:" + "a" * 64,
    "vllm/vllm-openai-rocm:v0.33.0",
    "vllm/vllm-openai-evil:v0.33.0",
    "evil.example.com/vllm/vllm-openai:v0.33.0",
    "attacker/vllm-openai",
    "busybox",
    "ubuntu:22.04",
    "docker.io/library/ubuntu",
    "registry.local/ml/vllm:v1",
    "registry.local.evil.com/ml/vllm:v1",
    "myorg/vllm:v1",
    "myorganisation/vllm:v1",
    "localhost:5000/vllm:v1",
    "localhost:5000/vllm/other:v1",
]
TOKEN = {"name": "hf-token", "key": "token"}


def _secret_env(name: str) -> dict[str, Any]:
    return {"name": name.upper().replace("-", "_"), "valueFrom": {"secretKeyRef": {"name": name, "key": "k"}}}


# (what the case changes, spec path -> value)
CHANGES: list[tuple[str, dict[str, Any]]] = [
    *[(f"image {image}", {"serving.image": image}) for image in IMAGES],
    ("hostPath", {"model.cache": {"hostPath": {"path": "/mnt/nvme/models"}}}),
    ("claim", {"model.cache": {"persistentVolumeClaim": {"claimName": "weights"}}}),
    ("env of the token Secret", {"model.tokenSecretRef": TOKEN, "serving.env": [_secret_env("hf-token")]}),
    ("env of another Secret", {"serving.env": [{"name": "PLAIN", "value": "1"}, _secret_env("payments-db")]}),
    (
        "env of a ConfigMap",
        {"serving.env": [{"name": "C", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]},
    ),
    ("priority gpu-high", {"placement.priorityClassName": "gpu-high"}),
    ("priority system-node-critical", {"placement.priorityClassName": "system-node-critical"}),
    ("everything at once", {"serving.image": "busybox", "model.cache": {"hostPath": {"path": "/"}}}),
]


def _body(namespace: str, index: int, change: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((EXAMPLES / "mimo-fp8-h200.yaml").read_text())
    body["metadata"] = {"name": f"policy-case-{index}", "namespace": namespace}
    for path, value in change.items():
        *parents, leaf = path.split(".")
        node = body["spec"]
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = copy.deepcopy(value)
    return body


def _dry_run(sandbox: Sandbox, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return sandbox.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(body), check=False)


@pytest.fixture
def rendered_policy(sandbox: Sandbox, namespace: str) -> Iterator[Any]:
    """A function that applies the chart's author policy, rendered with the given values, to the test's
    namespace alone; whatever it applied is deleted afterwards."""
    applied: list[str] = []

    def apply(values: list[str]) -> str:
        release = release_name()
        out = helm(
            sandbox, "template", release, str(CHART), "-n", namespace,
            "--set", f"rbac.namespaces={{{namespace}}}", *values,
            "--show-only", "templates/author-policy.yaml",
        ).stdout  # fmt: skip
        applied.append(out)
        sandbox.kubectl("apply", "-f", "-", input=out)
        (policy,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "ValidatingAdmissionPolicy"]
        return str(policy["metadata"]["name"])

    yield apply
    for out in applied:
        sandbox.kubectl("delete", "--ignore-not-found", "-f", "-", input=out, check=False)


@pytest.mark.parametrize(("values", "policy"), POLICIES)
def test_the_api_server_refuses_at_apply_exactly_what_the_operator_refuses(
    sandbox: Sandbox,
    mimo_crd: str,
    namespace: str,
    rendered_policy: Any,
    values: list[str],
    policy: AuthorPolicy,
) -> None:
    configured = (RenderConfig().vllm_image,)  # the chart passes operator.vllmImage; ROCm's is in the list
    cases = [(what, _body(namespace, i, change)) for i, (what, change) in enumerate(CHANGES)]
    expected = {what: policy.refusals(parse_mimo_deployment(body), configured) for what, body in cases}
    assert any(expected.values()) and not all(expected.values()), "each policy both allows and refuses"

    name = rendered_policy(values)
    # The API server type-checks every expression against the CRD's schema: no warning may remain.
    checked = wait_for(
        lambda: (
            get_json(sandbox, "get", "validatingadmissionpolicy", name).get("status") or NotYet("no status")
        ),
        timeout=30,
        description="the author policy type-checked",
    )
    assert checked.get("typeChecking", {}).get("expressionWarnings") is None, checked
    # A new policy reaches admission after a moment: wait for the first case it must refuse.
    what, probe = next((what, body) for what, body in cases if expected[what])
    wait_for(
        lambda: _dry_run(sandbox, probe).returncode != 0 or NotYet("admitted"),
        timeout=30,
        description=f"{what} refused at apply",
    )

    for what, body in cases:
        proc = _dry_run(sandbox, body)
        if not expected[what]:
            assert proc.returncode == 0, (
                f"{what}: refused at apply but allowed by the operator: {proc.stderr}"
            )
            continue
        assert proc.returncode != 0, (
            f"{what}: admitted at apply but refused by the operator: {expected[what]}"
        )
        assert "ValidatingAdmissionPolicy" in proc.stderr, proc.stderr
        # The API server names the first rule broken (the operator lists them all, in the same order).
        refusal = expected[what][0]
        field = refusal.split(" ", 1)[0].split("[", 1)[0]  # spec.serving.env[1] -> spec.serving.env
        chart_value = refusal.rsplit("chart value ", 1)[1].split(")", 1)[0]
        assert field in proc.stderr and chart_value in proc.stderr, (what, refusal, proc.stderr)
