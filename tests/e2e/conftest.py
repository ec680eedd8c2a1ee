"""Fixtures for the chart's end-to-end tests: helm against the sandbox, and the operator process
running as the chart's ServiceAccount, so the API server enforces the chart's RBAC on every request."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import wait_for
from tests.integration.conftest import install_crd
from tests.integration.operator_process import free_port, launch, stop, wait_healthy

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mimo-operator"
EXAMPLES = REPO / "examples"
# The chart's default opt-in label for the cluster-wide operator's write scope (templates/write-scope.yaml).
_OPT_IN = yaml.safe_load((CHART / "values.yaml").read_text())["rbac"]["writeScope"]["optInLabel"]
OPT_IN_KEY = _OPT_IN["key"]
OPT_IN_LABEL = f"{OPT_IN_KEY}={_OPT_IN['value']}"


def helm(sandbox: Sandbox, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(sandbox.bins.helm), f"--kubeconfig={sandbox.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=sandbox.env(),
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def get_json(sandbox: Sandbox, *args: str) -> Any:
    return json.loads(sandbox.kubectl(*args, "-o", "json").stdout)


@pytest.fixture(scope="session")
def mimo_crd(sandbox: Sandbox) -> str:
    return install_crd(sandbox)


def release_name() -> str:
    # Unique per test: the ClusterRole and ClusterRoleBinding are named after the release.
    return f"mimo-operator-{secrets.token_hex(3)}"


@pytest.fixture
def install_chart(sandbox: Sandbox, namespace: str) -> Iterator[Callable[..., str]]:
    """`helm install` of the chart into the test's namespace (the CRD is installed apart), returning the
    release name. Every release it made is uninstalled afterwards: the chart's admission policies are
    cluster-scoped and would otherwise judge the MimoDeployments of the tests that follow."""
    installed: list[str] = []

    def install(*values: str) -> str:
        release = release_name()
        installed.append(release)
        helm(sandbox, "install", release, str(CHART), "-n", namespace, "--set", "crds.enabled=false", *values)
        return release

    yield install
    for release in installed:
        helm(sandbox, "uninstall", release, "-n", namespace, "--wait", check=False)


def service_account_kubeconfig(sandbox: Sandbox, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of `account`: requests made with it are the
    operator pod's requests, authorised by the chart's RBAC and nothing else."""
    token = sandbox.kubectl("-n", namespace, "create", "token", account, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(sandbox.kubeconfig.read_text())
    ca = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    base64.b64decode(ca)  # fail here, not in the operator, if the admin kubeconfig changed shape
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "sandbox",
                        "cluster": {"server": sandbox.server, "certificate-authority-data": ca},
                    }
                ],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": "operator", "context": {"cluster": "sandbox", "user": account}}],
                "current-context": "operator",
            }
        )
    )
    return path


class ChartOperator:
    """`mimo-operator` started with the args and environment of the chart's Deployment (read back
    from the cluster), as the chart's ServiceAccount. Only the ports change (free local ports)."""

    def __init__(
        self, sandbox: Sandbox, namespace: str, deployment: str, kubeconfig: Path, log: Path
    ) -> None:
        self.sandbox = sandbox
        self.namespace = namespace
        self.deployment = deployment
        self.kubeconfig = kubeconfig
        self.log_path = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.liveness_port = 0
        self.metrics_port = 0

    def container(self) -> dict[str, Any]:
        dep = get_json(self.sandbox, "-n", self.namespace, "get", "deployment", self.deployment)
        (container,) = dep["spec"]["template"]["spec"]["containers"]
        return dict(container)

    def start(self) -> ChartOperator:
        container = self.container()
        self.liveness_port, self.metrics_port = free_port(), free_port()
        ports = {"--liveness-port": self.liveness_port, "--metrics-port": self.metrics_port}
        args = [
            f"{arg.split('=')[0]}={ports[arg.split('=')[0]]}" if arg.split("=")[0] in ports else arg
            for arg in container["args"]
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIMO_OPERATOR_")}
        for item in container["env"]:
            if "value" in item:
                env[item["name"]] = item["value"]
        env["POD_NAMESPACE"] = self.namespace  # the downward API's value in a real pod
        env["KUBECONFIG"] = str(self.kubeconfig)
        self.proc = launch(args, env, self.log_path)
        wait_healthy(self.proc, self.liveness_port, self.log)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop(self.proc)


@pytest.fixture
def workload_namespace(sandbox: Sandbox, namespace: str) -> Iterator[str]:
    """A second namespace for the MimoDeployments. vLLM pods run as root (the upstream image does), so
    they cannot live in the operator's restricted namespace. Afterwards the MimoDeployments are
    deleted and their pods awaited, so the next test finds the simulated GPUs free."""
    name = f"{namespace[:55]}-w"
    sandbox.kubectl("create", "namespace", name)
    # Opted in to the cluster-wide operator's write scope (the chart's default optInLabel).
    sandbox.kubectl("label", "namespace", name, OPT_IN_LABEL)
    wait_for(
        lambda: sandbox.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=30,
        description=f"ServiceAccount default in {name}",
    )
    try:
        yield name
    finally:
        sandbox.kubectl("-n", name, "delete", "mimo", "--all", "--wait=true", "--timeout=60s", check=False)
        wait_for(
            lambda: not get_json(sandbox, "-n", name, "get", "pods")["items"],
            timeout=90,
            description=f"pods of {name} gone",
        )
        sandbox.kubectl("delete", "namespace", name, "--wait=false")
