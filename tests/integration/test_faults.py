"""The operator under faults: killed mid-reconcile, its API server and etcd restarted, other writers
editing its children, and a child name already taken by someone else.

These tests restart control-plane components, so they run on a sandbox of their own (started once for
the module, with enough simulated H200 nodes for 20 single-node deployments) instead of the session's
shared one. Every wait is bounded; none asserts how fast anything happened.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

from mimo_sandbox.build import BuildError
from mimo_sandbox.cluster import NotYet, Sandbox, SandboxError
from mimo_sandbox.pytest_plugin import admin_api_client, wait_for
from tests.integration.conftest import CRD
from tests.integration.operator_process import OperatorProcess

pytestmark = pytest.mark.sandbox

GROUP, VERSION, PLURAL = "serving.mimo.dev", "v1alpha1", "mimodeployments"
MANAGED_BY = "app.kubernetes.io/managed-by=mimo-operator"
PHASE_ORDER = {None: 0, "Pending": 1, "Deploying": 2, "Ready": 3}
CHILD_KINDS = "statefulsets,services,networkpolicies,poddisruptionbudgets,horizontalpodautoscalers"


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
        # Up to two minutes: a test before may have restarted the API server, and the controller
        # manager's informers (the ServiceAccount controller's among them) take a while to come back.
        timeout=120,
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
            [f"NetworkPolicy/{name}", f"Service/{name}", f"Service/{name}-pods", f"StatefulSet/{name}"]
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


# ---- watch gaps, edited labels, removed fields, refusals, rotated credentials (issue 12) -------------


def _pause(operator: OperatorProcess) -> None:
    assert operator.proc is not None
    os.killpg(operator.proc.pid, signal.SIGSTOP)


def _resume(operator: OperatorProcess) -> None:
    assert operator.proc is not None
    os.killpg(operator.proc.pid, signal.SIGCONT)


def _break_watches(sb: Sandbox) -> None:
    """Restart the API server while the operator is paused: its open watch connections die before
    anything else happens, so no event of what follows can sit in a socket buffer for it."""
    sb.restart_component("kube-apiserver")


def _forget_history(sb: Sandbox) -> None:
    """Compact etcd's history at its current revision: a watch resumed from any earlier
    resourceVersion is answered 410 Gone, and the client has to list again."""
    etcd = sb._components["etcd"].health_url.rsplit("/", 1)[0]
    with urllib.request.urlopen(
        urllib.request.Request(f"{etcd}/v3/kv/range", data=b'{"key": "AA=="}', method="POST"), timeout=10
    ) as response:
        revision = int(json.loads(response.read())["header"]["revision"])
    compact = json.dumps({"revision": str(revision), "physical": True}).encode()
    with urllib.request.urlopen(
        urllib.request.Request(f"{etcd}/v3/kv/compaction", data=compact, method="POST"), timeout=30
    ):
        pass


def _during_a_watch_gap(sb: Sandbox, operator: OperatorProcess, change: Callable[[], None]) -> None:
    """`change` happens while the operator cannot see it: paused, its watches broken first, and the
    history compacted after, so it can only learn of the change by listing again."""
    _pause(operator)
    try:
        _break_watches(sb)
        change()
        _forget_history(sb)
    finally:
        _resume(operator)


def _exists(sb: Sandbox, ns: str, *what: str) -> bool:
    return sb.kubectl("-n", ns, "get", *what, check=False).returncode == 0


def test_a_child_deleted_during_a_watch_gap_is_recreated(
    fault_sandbox: Sandbox, ns: str, operator: OperatorProcess
) -> None:
    sb = fault_sandbox
    apply(sb, ns, mimo("mimo-gap"))
    wait_ready(sb, ns, "mimo-gap")
    _during_a_watch_gap(sb, operator, lambda: sb.kubectl("-n", ns, "delete", "service", "mimo-gap-pods"))
    wait_for(
        lambda: _exists(sb, ns, "service", "mimo-gap-pods"),
        timeout=90,
        description="the Service deleted during the watch gap recreated",
    )
    assert operator.proc is not None and operator.proc.poll() is None, operator.log_tail()


def test_a_deployment_deleted_during_a_watch_gap_is_forgotten_not_resurrected(
    fault_sandbox: Sandbox, ns: str, operator: OperatorProcess
) -> None:
    sb = fault_sandbox
    apply(sb, ns, mimo("mimo-ghost"))
    wait_ready(sb, ns, "mimo-ghost")

    def delete_and_collect() -> None:
        sb.kubectl("-n", ns, "delete", "mimo", "mimo-ghost", "--wait=true")
        # What the garbage collector would do, done here: right after the API server's restart its
        # graph is still resyncing, and how long that takes is not what this test is about.
        sb.kubectl("-n", ns, "delete", CHILD_KINDS, "-l", "serving.mimo.dev/deployment=mimo-ghost")
        wait_for(lambda: not children(sb, ns), timeout=60, description="children of mimo-ghost deleted")

    _during_a_watch_gap(sb, operator, delete_and_collect)
    applies_before = operator.requests(("apply",))
    # The sync point: the operator forgot the deployment (its phase gauge drops). Before, nothing told
    # it the deployment was gone, and the next resync or child event reconciled the stale body.
    wait_for(
        lambda: operator.metrics().get('mimo_operator_deployments{phase="Ready"}', 1.0) == 0.0,
        timeout=90,
        description="the deleted deployment no longer counted as Ready",
    )
    assert operator.requests(("apply",)) == applies_before
    assert children(sb, ns) == []


def test_a_child_whose_labels_were_edited_away_is_repaired(
    fault_sandbox: Sandbox, ns: str, operator: OperatorProcess
) -> None:
    sb = fault_sandbox
    apply(sb, ns, mimo("mimo-label"))
    wait_ready(sb, ns, "mimo-label")
    sb.kubectl("-n", ns, "label", "service", "mimo-label-pods", "app.kubernetes.io/managed-by-")

    def relabelled() -> Any:
        labels = get_json(sb, "-n", ns, "get", "service", "mimo-label-pods")["metadata"].get("labels", {})
        return labels if labels.get("app.kubernetes.io/managed-by") == "mimo-operator" else NotYet(labels)

    wait_for(relabelled, timeout=60, description="the managed-by label put back")


def test_a_field_the_operator_no_longer_renders_is_removed(
    fault_sandbox: Sandbox, ns: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    """As after an upgrade of the operator: a field the previous version applied is not in the new
    rendering; only an apply without it removes it (the plan-hash label does not cover Services)."""
    sb = fault_sandbox
    manifest = tmp_path / "mimo.yaml"
    manifest.write_text(yaml.safe_dump(mimo("mimo-removal")))
    apply(sb, ns, mimo("mimo-removal"))
    wait_ready(sb, ns, "mimo-removal")
    live = get_json(sb, "-n", ns, "get", "mimo", "mimo-removal")
    rendered = subprocess.run(
        [sys.executable, "-m", "mimo_operator.cli", "render", "-n", ns, "-f", str(manifest)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    service = next(
        o for o in yaml.safe_load_all(rendered) if o and o["metadata"]["name"] == "mimo-removal-pods"
    )
    for ref in service["metadata"]["ownerReferences"]:
        ref["uid"] = live["metadata"]["uid"]
    service["metadata"].setdefault("annotations", {})["old-version.mimo.dev/setting"] = "gone-in-this-version"
    sb.kubectl(
        "-n", ns, "apply", "--server-side", "--force-conflicts", "--field-manager=mimo-operator",
        "-f", "-", input=json.dumps(service),
    )  # fmt: skip

    def removed() -> Any:
        meta = get_json(sb, "-n", ns, "get", "service", "mimo-removal-pods")["metadata"]
        annotations = meta.get("annotations", {})
        return meta if "old-version.mimo.dev/setting" not in annotations else NotYet(annotations)

    wait_for(removed, timeout=60, description="the field the operator no longer renders removed")


def test_a_quota_that_forbids_statefulsets_ends_in_a_condition_and_one_event(
    fault_sandbox: Sandbox, ns: str, operator: OperatorProcess
) -> None:
    sb = fault_sandbox
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-statefulsets"},
        "spec": {"hard": {"count/statefulsets.apps": "0"}},
    }
    apply(sb, ns, quota)
    wait_for(
        lambda: (
            "count/statefulsets.apps"
            in (get_json(sb, "-n", ns, "get", "resourcequota", "no-statefulsets").get("status") or {}).get(
                "hard", {}
            )
        ),
        timeout=30,
        description="the quota observed by the quota controller",
    )
    apply(sb, ns, mimo("mimo-quota"))

    def refused() -> Any:
        status = get_json(sb, "-n", ns, "get", "mimo", "mimo-quota").get("status", {})
        return status if status.get("phase") == "Failed" else NotYet(status)

    status = wait_for(refused, timeout=60, description="mimo-quota refused by the quota")
    planned = next(c for c in status["conditions"] if c["type"] == "Planned")
    assert planned["reason"] == "QuotaExceeded", planned
    assert "no-statefulsets" in planned["message"] and "count/statefulsets.apps=0" in planned["message"]
    assert not children(sb, ns) or all(o["kind"] != "StatefulSet" for o in children(sb, ns))

    # Retried on a schedule (not hot), without repeating the event; lifting the quota recovers.
    sb.kubectl("-n", ns, "delete", "resourcequota", "no-statefulsets")
    wait_ready(sb, ns, "mimo-quota", timeout=120)
    events = get_json(sb, "-n", ns, "get", "events", "--field-selector", "involvedObject.name=mimo-quota")
    warnings = [e for e in events["items"] if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["QuotaExceeded"], warnings
    assert "no-statefulsets" in warnings[0]["message"]


def _token_kubeconfig(sb: Sandbox, path: Path, token: str) -> None:
    config = yaml.safe_load(sb.kubeconfig.read_text())
    config["users"] = [{"name": "rotating", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "rotating"
    partial = path.with_suffix(".tmp")
    partial.write_text(yaml.safe_dump(config))
    partial.replace(path)  # atomically, as the kubelet swaps a projected token


def _bound_token(sb: Sandbox, ns: str, secret: str) -> str:
    sb.kubectl("-n", ns, "create", "secret", "generic", secret)
    return sb.kubectl(
        "-n", ns, "create", "token", "rotating", "--bound-object-kind=Secret", f"--bound-object-name={secret}"
    ).stdout.strip()


def test_a_rotated_token_is_followed_while_the_old_one_stops_working(
    fault_sandbox: Sandbox, ns: str, tmp_path: Path
) -> None:
    sb = fault_sandbox
    sb.kubectl("-n", ns, "create", "serviceaccount", "rotating")
    sb.kubectl(
        "create", "clusterrolebinding", f"rotating-{ns}", "--clusterrole=cluster-admin",
        f"--serviceaccount={ns}:rotating",
    )  # fmt: skip
    kubeconfig = tmp_path / "kubeconfig"
    _token_kubeconfig(sb, kubeconfig, _bound_token(sb, ns, "token-1"))
    rotating = OperatorProcess(sb, ns, tmp_path, env={"KUBECONFIG": str(kubeconfig)}).start()
    try:
        apply(sb, ns, mimo("mimo-rotate"))
        wait_ready(sb, ns, "mimo-rotate")

        retired = tmp_path / "kubeconfig-first-token"
        retired.write_text(kubeconfig.read_text())
        _token_kubeconfig(sb, kubeconfig, _bound_token(sb, ns, "token-2"))
        sb.kubectl("-n", ns, "delete", "secret", "token-1")  # the first token is no longer accepted

        def first_token_refused() -> Any:
            proc = subprocess.run(
                [str(sb.bins.kubectl), f"--kubeconfig={retired}", "-n", ns, "get", "mimo"],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            return "Unauthorized" in proc.stderr or NotYet(proc.stderr or proc.stdout)

        wait_for(first_token_refused, timeout=60, description="the first token refused by the API server")
        sb.kubectl("-n", ns, "scale", "mimo", "mimo-rotate", "--replicas=2")
        wait_ready(sb, ns, "mimo-rotate", "2/2", timeout=120)
        assert rotating.proc is not None and rotating.proc.poll() is None
    finally:
        rotating.kill()
        sb.kubectl("delete", "clusterrolebinding", f"rotating-{ns}", check=False)


def test_handlers_touch_the_queue_only_from_its_event_loop(
    fault_sandbox: Sandbox, ns: str, tmp_path: Path
) -> None:
    """asyncio's debug mode raises on a call into the loop from another thread (kopf runs plain
    function handlers in a thread pool); the operator must reconcile with it on and log no such error."""
    sb = fault_sandbox
    debugged = OperatorProcess(sb, ns, tmp_path, env={"PYTHONASYNCIODEBUG": "1"}).start()
    try:
        apply(sb, ns, mimo("mimo-debug"))
        wait_ready(sb, ns, "mimo-debug")
        sb.kubectl("-n", ns, "delete", "service", "mimo-debug-pods")
        wait_for(
            lambda: _exists(sb, ns, "service", "mimo-debug-pods"),
            timeout=60,
            description="a child event handled with asyncio debug on",
        )
    finally:
        debugged.kill()
    text = debugged.log_path.read_text(errors="replace")
    assert "Non-thread-safe operation" not in text, text[-3000:]
