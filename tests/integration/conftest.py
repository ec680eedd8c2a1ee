"""Fixtures for operator tests: the CRD installed once, an operator per test namespace, weight PVCs."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_operator.api.constants import CRD_NAME
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import NotYet, wait_for
from mimo_sandbox.volumes import bound_claims_json
from tests.integration.operator_process import OperatorProcess

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "mimodeployments.serving.mimo.dev.yaml"
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def mimo_crd(sandbox: Sandbox) -> str:
    return install_crd(sandbox)


def install_crd(sandbox: Sandbox) -> str:
    """The committed CRD installed (server-side apply, as a user or Helm would) and served."""
    sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    sandbox.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")

    def served() -> Any:
        # Established can precede discovery by a moment; kubectl needs discovery to map the kind.
        proc = sandbox.kubectl("get", "mimodeployments", "-A", check=False)
        return proc.returncode == 0 or NotYet(proc.stderr.strip())

    wait_for(served, timeout=30, description="mimodeployments to be served")
    return CRD_NAME


@contextlib.contextmanager
def manifest_namespace(sandbox: Sandbox, prefix: str) -> Iterator[str]:
    """A namespace for a module whose tests create no pods, so it needs no ServiceAccount wait."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    sandbox.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply_strict(sandbox: Sandbox, namespace: str, body: dict[str, Any], *extra: str) -> Any:
    """`kubectl apply --server-side --validate=strict`: unknown fields are errors, not silently pruned."""
    return sandbox.kubectl(
        "apply",
        "--server-side",
        "--validate=strict",
        "--field-manager=manifest-test",
        "-n",
        namespace,
        *extra,
        "-f",
        "-",
        input=yaml.safe_dump(body),
        check=False,
    )


@pytest.fixture
def operator(sandbox: Sandbox, mimo_crd: str, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator watching this test's namespace, with its default settings."""
    with operator_in(sandbox, namespace, tmp_path) as process:
        yield process


@contextlib.contextmanager
def operator_in(
    sandbox: Sandbox, namespace: str, tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[OperatorProcess]:
    """An operator watching `namespace` (settings from `env`, MIMO_OPERATOR_*). Afterwards every
    MimoDeployment is deleted and its GPUs freed, so the next test finds the simulated nodes empty."""
    process = OperatorProcess(sandbox, namespace, tmp_path, env=env).start()
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
