"""Fixtures for operator tests: the CRD installed once, an operator per test namespace, weight PVCs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import wait_for
from mimo_sandbox.volumes import bound_claims_json
from tests.integration.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "mimodeployments.serving.mimo.dev.yaml"
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def mimo_crd(sandbox: Sandbox) -> str:
    sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    sandbox.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/mimodeployments.serving.mimo.dev"
    )
    return "mimodeployments.serving.mimo.dev"


@pytest.fixture
def operator(sandbox: Sandbox, mimo_crd: str, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator watching this test's namespace. Afterwards every MimoDeployment is deleted and its
    GPUs freed, so the next test finds the simulated nodes empty."""
    process = OperatorProcess(sandbox, namespace, tmp_path).start()
    try:
        yield process
    finally:
        process.kill()
        sandbox.kubectl(
            "-n", namespace, "delete", "mimo", "--all", "--wait=true", "--timeout=60s", check=False
        )
        wait_for(
            lambda: (
                not json.loads(sandbox.kubectl("-n", namespace, "get", "pods", "-o", "json").stdout)["items"]
            ),
            timeout=90,
            description=f"pods of namespace {namespace} gone",
        )


def weights_pvc(sandbox: Sandbox, namespace: str, claim: str = "mimo-weights") -> None:
    """A PVC bound to a hostPath PV: the sandbox has no storage provisioner, real clusters do."""
    sandbox.kubectl("apply", "-f", "-", input=bound_claims_json(namespace, claim))


def get_json(sandbox: Sandbox, *args: str) -> Any:
    return json.loads(sandbox.kubectl(*args, "-o", "json").stdout)
