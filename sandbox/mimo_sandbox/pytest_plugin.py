"""pytest fixtures for tests that run against the sandbox control plane.

Load it from a conftest with `pytest_plugins = ["mimo_sandbox.pytest_plugin"]`. One sandbox is
started per test session (the expensive part: ~10 s warm) and every test gets its own namespace, so
tests stay independent without paying for a cluster each. A sandbox that cannot start makes every test
that asked for it ERROR with the component's log: CI must never mistake "no cluster" for "all green".

Environment knobs:
- `MIMO_SANDBOX_POOLS`: path of a pools YAML to use instead of the packaged default.
- `MIMO_SANDBOX_ATTACH=1`: reuse the background sandbox from `mimo-operator sandbox up` (fast local
  iteration); it is left running after the session.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client, config

from mimo_sandbox.build import BuildError
from mimo_sandbox.cluster import NotYet, Sandbox, SandboxError, default_state_dir, wait_until

__all__ = ["NotYet", "admin_api_client", "api_client", "namespace", "sandbox", "wait_for"]

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 30.0, description: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy and return that; fail the test on timeout.

    The failure names what was awaited and the last value (or exception) the predicate produced,
    which is usually the whole diagnosis; return `NotYet(observed)` to report more than a falsy value.
    """
    try:
        result: T = wait_until(predicate, timeout=timeout, description=description)
    except TimeoutError as exc:
        pytest.fail(str(exc))
    return result


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """The session's sandbox: `.kubeconfig`, `.server`, `.kubectl(*args)`, `.bin_dir`, `.node_names`."""
    if os.environ.get("MIMO_SANDBOX_ATTACH") == "1":
        try:
            attached = Sandbox.attach(default_state_dir())
        except SandboxError as exc:
            pytest.fail(f"MIMO_SANDBOX_ATTACH=1 but no background sandbox is running: {exc}", pytrace=False)
        yield attached
        return
    pools_path = os.environ.get("MIMO_SANDBOX_POOLS")
    sb = Sandbox(pools=Path(pools_path) if pools_path else None)
    try:
        sb.start()
    except (SandboxError, BuildError, OSError) as exc:
        pytest.fail(f"the sandbox control plane could not start:\n{exc}", pytrace=False)
    try:
        yield sb
    finally:
        sb.stop()


def admin_api_client(sandbox: Sandbox) -> Iterator[Any]:
    """A `kubernetes.client.ApiClient` logged in as the sandbox admin (system:masters), closed after."""
    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox.kubeconfig), client_configuration=configuration
    )
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def api_client(sandbox: Sandbox) -> Iterator[Any]:
    """A `kubernetes.client.ApiClient` logged in as the sandbox admin (system:masters)."""
    yield from admin_api_client(sandbox)


def _namespace_name(test_name: str) -> str:
    # Readable in `kubectl get ns` (which test made it), unique across reruns, and a valid DNS label.
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:48].strip("-") or "test"
    return f"{base}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api_client: Any) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards; yields its name.

    Waits for the namespace's `default` ServiceAccount, because the ServiceAccount admission plugin
    rejects pods created before the controller manager has made it.
    """
    core = client.CoreV1Api(api_client)
    name = _namespace_name(request.node.name)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        wait_for(
            lambda: core.read_namespaced_service_account("default", name),
            timeout=30,
            description=f"ServiceAccount default in namespace {name}",
        )
        yield name
    finally:
        # Pods first: kwok removes them at once, whereas the namespace controller only gets to them
        # after its own discovery pass (~5 s).
        core.delete_collection_namespaced_pod(name)
        core.delete_namespace(name, propagation_policy="Background")
        # The simulated GPUs are shared by the whole session: wait until this test's pods are gone so
        # the next test finds the nodes free. The namespace object itself may linger a little longer.
        wait_for(
            lambda: not core.list_namespaced_pod(name).items,
            timeout=60,
            description=f"pods of deleted namespace {name} to be gone",
        )
