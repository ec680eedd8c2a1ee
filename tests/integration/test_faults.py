"""The operator under faults: killed mid-reconcile, its API server and etcd restarted, other writers
editing its children, and a child name already taken by someone else.

These tests restart control-plane components, so they run on a sandbox of their own (started once for
the module, with enough simulated H200 nodes for 20 single-node deployments) instead of the session's
shared one. Every wait is bounded; none asserts how fast anything happened.
"""

from __future__ import annotations

import json
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

from mimo_operator.sandbox.build import BuildError
from mimo_operator.sandbox.cluster import NotYet, Sandbox, SandboxError
from mimo_operator.sandbox.pytest_plugin import admin_api_client, wait_for
from tests.integration.conftest import CRD
from tests.integration.operator_process import OperatorProcess

pytestmark = pytest.mark.sandbox

GROUP, VERSION, PLURAL = "serving.mimo.dev", "v1alpha1", "mimodeployments"
MANAGED_BY = "app.kubernetes.io/managed-by=mimo-operator"
PHASE_ORDER = {None: 0, "Pending": 1, "Deploying": 2, "Ready": 3}
CHILD_KINDS = "statefulsets,services,poddisruptionbudgets,horizontalpodautoscalers"


@pytest.fixture(scope="module")
def fault_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    pools = tmp_path_factory.mktemp("pools") / "pools.yaml"
    pools.write_text(
        yaml.safe_dump({"pools": [{"name": "h200", "gpu": "H200-141GB", "count": 10, "gpusPerNode": 8}]})
    )
    sb = Sandbox(pools=pools)
    try:
        sb.start()
    except (SandboxError, BuildError, OSError) as exc:
        pytest.fail(f"the fault-test sandbox could not start:\n{exc}", pytrace=False)
    try:
        sb.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        sb.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{PLURAL}.{GROUP}")
        wait_for(
            lambda: sb.kubectl("get", PLURAL, "-A", check=False).returncode == 0,
            timeout=30,
            description="mimodeployments served",
        )
        yield sb
    finally:
        sb.stop()


@pytest.fixture(scope="module")
def api(fault_sandbox: Sandbox) -> Iterator[client.ApiClient]:
    yield from admin_api_client(fault_sandbox)


@pytest.fixture
def ns(fault_sandbox: Sandbox, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"faults-{request.node.name[5:30].replace('_', '-').strip('-')}-{secrets.token_hex(3)}"
    fault_sandbox.kubectl("create", "namespace", name)
    wait_for(
        lambda: (
            fault_sandbox.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0
        ),
        timeout=30,
        description=f"ServiceAccount default in {name}",
    )
    try:
        yield name
    finally:
        fault_sandbox.kubectl("-n", name, "delete", "mimo", "--all", "--wait=false", check=False)
        fault_sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator(fault_sandbox: Sandbox, ns: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(fault_sandbox, ns, tmp_path).start()
    try:
        yield process
    finally:
        process.kill()


def mimo(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MimoDeployment",
        "metadata": {"name": name},
        "spec": {"precision": "fp8", "gpu": {"type": "H200-141GB"}, **spec},
    }


def get_json(sb: Sandbox, *args: str) -> Any:
    return json.loads(sb.kubectl(*args, "-o", "json").stdout)


def apply(sb: Sandbox, ns: str, *objects: dict[str, Any]) -> None:
    body = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    sb.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(body))


def wait_ready(sb: Sandbox, ns: str, name: str, ready: str = "1/1", timeout: float = 60) -> Any:
    def check() -> Any:
        obj = get_json(sb, "-n", ns, "get", "mimo", name)
        status = obj.get("status", {})
        done = (
            status.get("phase") == "Ready"
            and status.get("ready") == ready
            and status.get("observedGeneration") == obj["metadata"]["generation"]
        )
        return obj if done else NotYet(status)

    return wait_for(check, timeout=timeout, description=f"{name} Ready {ready}")


def children(sb: Sandbox, ns: str) -> list[Any]:
    items: list[Any] = get_json(sb, "-n", ns, "get", CHILD_KINDS)["items"]
    return items


def container(sts: Any) -> Any:
    return sts["spec"]["template"]["spec"]["containers"][0]


class PhaseRecorder:
    """Every phase each MimoDeployment passes through, from a watch (so no transition is missed)."""

    def __init__(self, api: client.ApiClient, ns: str, resource_version: str) -> None:
        self.phases: dict[str, list[tuple[str | None, int | None]]] = {}
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        custom = client.CustomObjectsApi(api)
        self._thread = threading.Thread(
            target=self._run, args=(custom, ns, resource_version), daemon=True, name="phase-recorder"
        )
        self._thread.start()

    def _run(self, custom: client.CustomObjectsApi, ns: str, resource_version: str) -> None:
        stream = self._watch.stream(
            custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            ns,
            PLURAL,
            resource_version=resource_version,
            timeout_seconds=300,
        )
        try:
            for event in stream:
                obj = event["object"]
                status = obj.get("status") or {}
                self.phases.setdefault(obj["metadata"]["name"], []).append(
                    (status.get("phase"), status.get("observedGeneration"))
                )
        except ProtocolError:
            pass  # stop() closed the stream

    def stop(self) -> None:
        self._watch.stop()  # type: ignore[no-untyped-call]


def test_sigkilled_mid_reconcile_then_restarted_converges_without_duplicates_or_regressions(
    fault_sandbox: Sandbox, api: client.ApiClient, ns: str, operator: OperatorProcess
) -> None:
    sb = fault_sandbox
    names = [f"mimo-{i:02d}" for i in range(20)]
    apply(sb, ns, *(mimo(n) for n in names))

    # Kill -9 at the first write: some deployments are half-applied (a Service without its
    # StatefulSet), some not started; none has finished.
    deadline = time.monotonic() + 30
    while operator.requests(("apply",)) < 1:
        assert time.monotonic() < deadline, f"the operator applied nothing:\n{operator.log_tail()}"
        time.sleep(0.005)
    operator.kill(signal.SIGKILL)
    assert operator.proc is not None and operator.proc.returncode == -signal.SIGKILL

    custom = client.CustomObjectsApi(api)
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
    at_kill = {o["metadata"]["name"]: (o.get("status") or {}) for o in listed["items"]}
    owners_with_children = {
        ref["name"] for obj in children(sb, ns) for ref in obj["metadata"].get("ownerReferences", [])
    }
    print(f"at SIGKILL: {len(owners_with_children)}/20 deployments had some child")
    assert len(owners_with_children) < len(names), "the kill came too late to interrupt anything"

    recorder = PhaseRecorder(api, ns, listed["metadata"]["resourceVersion"])
    restarted = OperatorProcess(sb, ns, operator.log_path.parent).start()
    try:
        for name in names:
            wait_ready(sb, ns, name, timeout=120)
        time.sleep(2)  # let trailing status writes land before checking for regressions
    finally:
        recorder.stop()
        restarted.kill()

    deployments = {
        o["metadata"]["name"]: o
        for o in custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
    }
    by_owner: dict[str, list[str]] = {}
    for obj in children(sb, ns):
        refs = obj["metadata"].get("ownerReferences", [])
        controllers = [r for r in refs if r.get("controller")]
        assert len(controllers) == 1, f"{obj['kind']}/{obj['metadata']['name']} has owners {refs}"
        owner = controllers[0]
        assert owner["uid"] == deployments[owner["name"]]["metadata"]["uid"], obj["metadata"]
        by_owner.setdefault(owner["name"], []).append(f"{obj['kind']}/{obj['metadata']['name']}")
    for name in names:
        assert sorted(by_owner.pop(name)) == sorted(
            [f"Service/{name}", f"Service/{name}-pods", f"StatefulSet/{name}"]
        )
    assert by_owner == {}, f"children of no deployment: {by_owner}"
    orphans = [
        o["metadata"]["name"]
        for o in get_json(sb, "-n", ns, "get", CHILD_KINDS, "-l", MANAGED_BY)["items"]
        if not o["metadata"].get("ownerReferences")
    ]
    assert orphans == []
    pods = get_json(sb, "-n", ns, "get", "pods")["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(f"{n}-0" for n in names)

    # No deployment went backwards: Pending -> Deploying -> Ready only, observedGeneration never lower.
    for name in names:
        seen = [(at_kill.get(name, {}).get("phase"), at_kill.get(name, {}).get("observedGeneration"))]
        seen += recorder.phases.get(name, [])
        ranks = [PHASE_ORDER.get(phase, -1) for phase, _ in seen]
        assert -1 not in ranks and ranks == sorted(ranks), f"{name} went through {seen}"
        generations = [g for _, g in seen if g is not None]
        assert generations == sorted(generations), f"{name} went through {seen}"
    ready_events = [
        e["involvedObject"]["name"]
        for e in get_json(sb, "-n", ns, "get", "events")["items"]
        if e["reason"] == "Ready" and e["involvedObject"]["kind"] == "MimoDeployment"
    ]
    assert sorted(ready_events) == names  # one Ready announcement each, none repeated by the restart


def _poll_liveness(operator: OperatorProcess, stop: threading.Event, seen: list[bool]) -> None:
    while not stop.is_set():
        seen.append(operator.healthy())
        time.sleep(0.2)


def _restart_while_probing(sb: Sandbox, operator: OperatorProcess, component: str) -> list[bool]:
    stop, seen = threading.Event(), []
    prober = threading.Thread(target=_poll_liveness, args=(operator, stop, seen), daemon=True)
    prober.start()
    try:
        sb.restart_component(component)
        time.sleep(1)
    finally:
        stop.set()
        prober.join(timeout=10)
    return seen


def test_apiserver_and_etcd_restarts_are_survived_and_later_changes_reconciled(
    fault_sandbox: Sandbox, ns: str, operator: OperatorProcess
) -> None:
    sb = fault_sandbox
    apply(sb, ns, mimo("mimo-restart"))
    wait_ready(sb, ns, "mimo-restart")
    sts_uid = get_json(sb, "-n", ns, "get", "statefulset", "mimo-restart")["metadata"]["uid"]

    seen = _restart_while_probing(sb, operator, "kube-apiserver")
    # The process and its event loop stay up through the outage: liveness keeps answering, and it
    # says ok, because a restarted operator could not do better while the API server is away.
    assert seen and all(seen), f"liveness during the apiserver restart: {seen}"
    assert operator.proc is not None and operator.proc.poll() is None, operator.log_tail()

    # A spec change after the restart is reconciled without restarting the operator ...
    sb.kubectl("-n", ns, "scale", "mimo", "mimo-restart", "--replicas=2")
    wait_ready(sb, ns, "mimo-restart", "2/2", timeout=90)
    assert get_json(sb, "-n", ns, "get", "statefulset", "mimo-restart")["spec"]["replicas"] == 2
    # ... and the child watches reconnected too: a deleted child comes back.
    sb.kubectl("-n", ns, "delete", "service", "mimo-restart-pods", "--wait=false")
    wait_for(
        lambda: sb.kubectl("-n", ns, "get", "service", "mimo-restart-pods", check=False).returncode == 0,
        timeout=60,
        description="deleted Service recreated after the apiserver restart",
    )

    seen = _restart_while_probing(sb, operator, "etcd")
    assert seen and all(seen), f"liveness during the etcd restart: {seen}"
    sb.kubectl(
        "-n",
        ns,
        "patch",
        "mimo",
        "mimo-restart",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"context": {"maxModelLen": 65536}}}),
    )
    obj = wait_ready(sb, ns, "mimo-restart", "2/2", timeout=90)
    assert obj["status"]["plan"]["maxModelLen"] == 65536
    sts = get_json(sb, "-n", ns, "get", "statefulset", "mimo-restart")
    args = container(sts)["args"]
    assert args[args.index("--max-model-len") + 1] == "65536"
    assert sts["metadata"]["uid"] == sts_uid  # updated in place, not recreated
    assert operator.healthy() and operator.proc is not None and operator.proc.poll() is None


def test_concurrent_writer_keeps_its_fields_and_loses_the_operators(
    fault_sandbox: Sandbox, ns: str, operator: OperatorProcess
) -> None:
    sb = fault_sandbox
    apply(sb, ns, mimo("mimo-shared"))
    wait_ready(sb, ns, "mimo-shared")
    original = get_json(sb, "-n", ns, "get", "statefulset", "mimo-shared")
    vllm = container(original)
    applies_before = operator.requests(("apply",))

    # Another tool (its own field manager) forces ownership of the image, an operator-owned field,
    # and adds fields the operator does not set: an annotation and a pod-template label.
    theirs = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "mimo-shared", "annotations": {"team.example.com/owner": "ml-platform"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"team.example.com/cost-center": "42"}},
                "spec": {"containers": [{"name": vllm["name"], "image": "registry.example.com/vllm:evil"}]},
            }
        },
    }
    sb.kubectl(
        "-n",
        ns,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=team-tool",
        "-f",
        "-",
        input=json.dumps(theirs),
    )
    # Meanwhile it keeps rewriting its own annotation; the operator must not fight over it.
    for i in range(10):
        sb.kubectl(
            "-n",
            ns,
            "annotate",
            "--overwrite",
            "--field-manager=team-tool",
            "statefulset",
            "mimo-shared",
            f"team.example.com/revision={i}",
        )

    def repaired() -> Any:
        sts = get_json(sb, "-n", ns, "get", "statefulset", "mimo-shared")
        return sts if container(sts)["image"] == vllm["image"] else NotYet(container(sts)["image"])

    sts = wait_for(repaired, timeout=30, description="the operator's image restored")
    time.sleep(2)
    sts = get_json(sb, "-n", ns, "get", "statefulset", "mimo-shared")
    assert container(sts)["image"] == vllm["image"]
    assert container(sts)["args"] == vllm["args"]
    annotations = sts["metadata"]["annotations"]
    assert annotations["team.example.com/owner"] == "ml-platform"
    assert annotations["team.example.com/revision"] == "9"
    assert sts["spec"]["template"]["metadata"]["labels"]["team.example.com/cost-center"] == "42"
    managed = get_json(sb, "-n", ns, "get", "statefulset", "mimo-shared", "--show-managed-fields")
    managers = {m["manager"] for m in managed["metadata"]["managedFields"]}
    assert {"mimo-operator", "team-tool"} <= managers
    # One repair, not a tug of war with every annotation write.
    repairs = operator.requests(("apply",)) - applies_before
    assert 1 <= repairs <= 3, f"{repairs} applies for one repair"
    assert get_json(sb, "-n", ns, "get", "mimo", "mimo-shared")["status"]["phase"] == "Ready"


def test_child_name_taken_by_a_stranger_is_neither_adopted_nor_overwritten(
    fault_sandbox: Sandbox, ns: str, operator: OperatorProcess
) -> None:
    sb = fault_sandbox
    stranger = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "mimo-taken", "labels": {"app": "someone-else"}},
        "spec": {"selector": {"app": "someone-else"}, "ports": [{"name": "web", "port": 80}]},
    }
    apply(sb, ns, stranger)
    before = get_json(sb, "-n", ns, "get", "service", "mimo-taken")
    applies_before = operator.requests(("apply",))
    apply(sb, ns, mimo("mimo-taken"))

    def failed() -> Any:
        status = get_json(sb, "-n", ns, "get", "mimo", "mimo-taken").get("status", {})
        return status if status.get("phase") == "Failed" else NotYet(status)

    status = wait_for(failed, timeout=30, description="mimo-taken Failed")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    taken = [c for c in conditions.values() if c["reason"] == "ChildNameTaken"]
    assert taken, conditions
    assert "Service/mimo-taken" in taken[0]["message"] and "not owned" in taken[0]["message"]
    events = [
        e
        for e in get_json(
            sb, "-n", ns, "get", "events", "--field-selector", "involvedObject.name=mimo-taken"
        )["items"]
        if e["reason"] == "ChildNameTaken"
    ]
    assert len(events) == 1 and events[0]["type"] == "Warning", events
    assert "Service/mimo-taken" in events[0]["message"]

    time.sleep(2)
    after = get_json(sb, "-n", ns, "get", "service", "mimo-taken")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert "ownerReferences" not in after["metadata"]
    assert after["spec"]["selector"] == {"app": "someone-else"}
    # Nothing else was created either: no half-deployed StatefulSet next to a stranger's Service.
    assert [o["metadata"]["name"] for o in children(sb, ns)] == ["mimo-taken"]
    assert operator.requests(("apply",)) == applies_before
