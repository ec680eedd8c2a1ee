"""The operator against the sandbox's real API server, running as in production (a subprocess).

Each test has its own namespace and operator; the fixtures free the simulated GPUs afterwards.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import NotYet, wait_for
from tests.integration.conftest import EXAMPLES, get_json, operator_in, weights_pvc
from tests.integration.operator_process import OperatorProcess
from tests.unit.kubelet import exec_argv
from tests.vllm_cli.harness import parse_serve_args

pytestmark = pytest.mark.sandbox
H100_LABEL = "NVIDIA-H100-80GB-HBM3"


def _mimo(sandbox: Sandbox, ns: str, name: str) -> Any:
    return get_json(sandbox, "-n", ns, "get", "mimo", name)


def _wait_phase(sandbox: Sandbox, ns: str, name: str, phase: str, timeout: float = 60) -> Any:
    def check() -> Any:
        obj = _mimo(sandbox, ns, name)
        status = obj.get("status", {})
        done = (
            status.get("phase") == phase and status.get("observedGeneration") == obj["metadata"]["generation"]
        )
        return obj if done else NotYet(status.get("phase"))

    return wait_for(check, timeout=timeout, description=f"{name} phase {phase}")


def _children(sandbox: Sandbox, ns: str, name: str) -> list[str]:
    out = sandbox.kubectl(
        "-n",
        ns,
        "get",
        "statefulsets,services,networkpolicies,poddisruptionbudgets,horizontalpodautoscalers",
        "-l",
        f"serving.mimo.dev/deployment={name}",
        "-o",
        "name",
    ).stdout
    return sorted(out.split())


def _pods(sandbox: Sandbox, ns: str) -> list[Any]:
    """The vLLM pods (not the weights download Job's)."""
    items: list[Any] = get_json(sandbox, "-n", ns, "get", "pods")["items"]
    return [p for p in items if "job-name" not in p["metadata"].get("labels", {})]


def _events(sandbox: Sandbox, ns: str, name: str) -> list[Any]:
    items: list[Any] = get_json(
        sandbox, "-n", ns, "get", "events", "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return items


def _condition(obj: Any, type_: str) -> Any:
    return next(c for c in obj["status"]["conditions"] if c["type"] == type_)


def test_fp8_on_h100_becomes_ready_with_plan_endpoint_and_columns(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    weights_pvc(sandbox, namespace)
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h100.yaml"))
    obj = _wait_phase(sandbox, namespace, "mimo-fp8-h100", "Ready")

    status = obj["status"]
    assert status["plan"]["gpusPerReplica"] == 8 and status["plan"]["tensorParallel"] == 8
    assert status["ready"] == "1/1" and status["readyReplicas"] == 1
    assert status["endpoint"] == f"http://mimo-fp8-h100.{namespace}.svc:8000/v1"
    # The cold-start estimate in the plan matches the startup probe the StatefulSet got.
    cold = status["plan"]["coldStart"]
    sts = get_json(sandbox, "-n", namespace, "get", "statefulset", "mimo-fp8-h100")
    startup = sts["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert cold["newPodSeconds"] <= budget < cold["newPodSeconds"] + startup["periodSeconds"]
    assert cold["firstStartSeconds"] == cold["downloadSeconds"] + cold["newPodSeconds"]
    assert _children(sandbox, namespace, "mimo-fp8-h100") == [
        "networkpolicy.networking.k8s.io/mimo-fp8-h100",
        "service/mimo-fp8-h100",
        "service/mimo-fp8-h100-pods",
        "statefulset.apps/mimo-fp8-h100",
    ]  # one replica: no disruption budget
    (pod,) = _pods(sandbox, namespace)
    # The API server accepted the NetworkPolicy, and it selects the pod that serves.
    policy = get_json(sandbox, "-n", namespace, "get", "networkpolicy", "mimo-fp8-h100")["spec"]
    selected = policy["podSelector"]["matchLabels"].items()
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in selected)
    node = get_json(sandbox, "get", "node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == H100_LABEL
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"

    wide = sandbox.kubectl("-n", namespace, "get", "mimo", "-o", "wide").stdout
    row = wide.splitlines()[1].split()
    assert row[:5] == ["mimo-fp8-h100", "Ready", "1/1", "8", "131072"]
    assert "TP8" in wide
    # kopf keeps no state on the object and handler results never reach status
    assert not [k for k in obj["metadata"].get("annotations", {}) if "kopf" in k]
    assert set(status) <= {
        "observedGeneration",
        "phase",
        "conditions",
        "plan",
        "replicas",
        "readyReplicas",
        "ready",
        "selector",
        "endpoint",
        "weights",
    }
    assert any(
        e["reason"] == "Ready" and e["type"] == "Normal" for e in _events(sandbox, namespace, "mimo-fp8-h100")
    )


def test_api_clients_named_in_the_spec_are_let_in_by_the_network_policy_as_stored(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    weights_pvc(sandbox, namespace)
    body = yaml.safe_load((EXAMPLES / "mimo-fp8-h100.yaml").read_text())
    clients = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}},
            "podSelector": {"matchLabels": {"app": "chat-frontend"}},
        },
        {"podSelector": {}},  # every pod of this namespace (already allowed by default; kept as written)
        {"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}},
    ]
    body["spec"].setdefault("serving", {})["apiClients"] = clients
    sandbox.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))

    def api_rule() -> Any:
        found = sandbox.kubectl("-n", namespace, "get", "networkpolicy", "mimo-fp8-h100", check=False)
        if found.returncode != 0:
            return NotYet(found.stderr)
        ingress = get_json(sandbox, "-n", namespace, "get", "networkpolicy", "mimo-fp8-h100")["spec"][
            "ingress"
        ]
        return next((rule for rule in ingress if rule.get("ports")), None) or NotYet(ingress)

    rule = wait_for(api_rule, timeout=60, description="the NetworkPolicy's API port rule")
    # Stored by the API server exactly as the spec wrote them (after the installer's peers).
    assert rule["from"][-len(clients) :] == clients
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    _wait_phase(sandbox, namespace, "mimo-fp8-h100", "Ready")


def test_bf16_multi_node_group_is_ready_only_when_every_pod_is(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    weights_pvc(sandbox, namespace, "mimo-weights-bf16")
    h100 = sorted(
        n["metadata"]["name"]
        for n in get_json(sandbox, "get", "nodes", "-l", f"nvidia.com/gpu.product={H100_LABEL}")["items"]
    )
    # Hold one H100 node back so the two-node group can start only half of its pods.
    sandbox.kubectl("taint", "node", h100[1], "test-hold=1:NoSchedule")
    try:
        sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-bf16-h100-multinode.yaml"))
        wait_for(
            lambda: (
                get_json(sandbox, "-n", namespace, "get", "statefulset", "mimo-bf16-h100-r0")
                .get("status", {})
                .get("readyReplicas")
                == 1
            ),
            timeout=60,
            description="the group's StatefulSet reporting one of its two pods ready",
        )
        # Sync point: a spec change that leaves the plan and the pods as they are (the plan serves
        # far more than 2 sequences at full length) bumps the generation. The operator's status for
        # that generation is computed after the StatefulSet reported 1/2 ready; counting a group
        # with one ready pod as a ready replica would show here as readyReplicas 1 or phase Ready.
        plan_before = _mimo(sandbox, namespace, "mimo-bf16-h100")["status"]["plan"]
        sandbox.kubectl(
            "-n", namespace, "patch", "mimo", "mimo-bf16-h100", "--type=merge",
            "-p", json.dumps({"spec": {"context": {"minConcurrency": 2}}}),
        )  # fmt: skip
        obj = wait_for(
            lambda: (
                (o := _mimo(sandbox, namespace, "mimo-bf16-h100"))["status"].get("observedGeneration") == 2
                and o
            ),
            timeout=60,
            description="status for generation 2",
        )
        assert obj["status"]["phase"] == "Deploying", obj["status"]
        assert obj["status"]["plan"]["hash"] == plan_before["hash"]  # the pods were left alone
        assert obj["status"]["readyReplicas"] == 0 and obj["status"]["ready"] == "0/1"
    finally:
        sandbox.kubectl("taint", "node", h100[1], "test-hold-")

    obj = _wait_phase(sandbox, namespace, "mimo-bf16-h100", "Ready")
    assert obj["status"]["plan"]["nodesPerReplica"] == 2
    assert (
        obj["status"]["selector"]
        == "apps.kubernetes.io/pod-index=0,serving.mimo.dev/deployment=mimo-bf16-h100"
    )
    assert _children(sandbox, namespace, "mimo-bf16-h100") == [
        "networkpolicy.networking.k8s.io/mimo-bf16-h100",
        "service/mimo-bf16-h100",
        "service/mimo-bf16-h100-pods",
        "statefulset.apps/mimo-bf16-h100-r0",
    ]
    pods = {p["metadata"]["name"]: p for p in _pods(sandbox, namespace)}
    assert set(pods) == {"mimo-bf16-h100-r0-0", "mimo-bf16-h100-r0-1"}
    assert len({p["spec"]["nodeName"] for p in pods.values()}) == 2  # one pod per node
    # The API Service reaches rank 0 only; the headless worker serves nothing.
    slices = get_json(
        sandbox, "-n", namespace, "get", "endpointslices", "-l", "kubernetes.io/service-name=mimo-bf16-h100"
    )
    targets = [ep["targetRef"]["name"] for s in slices["items"] for ep in s.get("endpoints") or []]
    assert targets == ["mimo-bf16-h100-r0-0"]


def test_data_parallel_ranks_across_two_nodes_become_ready_each_with_its_own_ranks(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    """The throughput layout across nodes (TP4 x DP4 +EP on two H100 nodes): the pods the real
    StatefulSet controller made, as the API server holds them, run their command as the kubelet would,
    and every rank's line goes through vLLM 0.33.0's own parser."""
    weights_pvc(sandbox, namespace, "mimo-weights-bf16")
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-bf16-h100-wide-ep.yaml"))
    obj = _wait_phase(sandbox, namespace, "mimo-bf16-wide-ep", "Ready")
    plan = obj["status"]["plan"]
    assert (plan["tensorParallel"], plan["dataParallel"], plan["nodesPerReplica"]) == (4, 4, 2)
    assert plan["expertParallel"] is True and plan["pipelineParallel"] == 1
    assert obj["status"]["readyReplicas"] == 1
    pods = sorted(_pods(sandbox, namespace), key=lambda p: p["metadata"]["name"])
    assert [p["metadata"]["name"] for p in pods] == ["mimo-bf16-wide-ep-r0-0", "mimo-bf16-wide-ep-r0-1"]
    assert len({p["spec"]["nodeName"] for p in pods}) == 2  # one pod per node
    lines = [exec_argv(pod, tmp_path) for pod in pods]
    assert all(argv[0] == "serve" for argv in lines)
    parsed = parse_serve_args([argv[1:] for argv in lines])
    head = f"mimo-bf16-wide-ep-r0-0.mimo-bf16-wide-ep-pods.{namespace}.svc"
    ranks: list[int] = []
    for pod, result in zip(pods, parsed, strict=True):
        assert result.ok, result.error
        values = result.parsed
        rank0 = pod["metadata"]["name"].endswith("-0")
        assert values["headless"] is not rank0
        assert (values["data_parallel_size"], values["data_parallel_size_local"]) == (4, 2)
        assert values["tensor_parallel_size"] == 4 and values["enable_expert_parallel"] is True
        assert values["data_parallel_address"] == head
        start = 0 if rank0 else values["data_parallel_start_rank"]
        ranks += range(start, start + values["data_parallel_size_local"])
    assert ranks == [0, 1, 2, 3]
    # Only the head serves HTTP: the API Service reaches pod 0 alone.
    api = "kubernetes.io/service-name=mimo-bf16-wide-ep"
    slices = get_json(sandbox, "-n", namespace, "get", "endpointslices", "-l", api)
    assert [ep["targetRef"]["name"] for s in slices["items"] for ep in s.get("endpoints") or []] == [
        "mimo-bf16-wide-ep-r0-0"
    ]


def test_infeasible_spec_fails_with_numbers_touches_nothing_and_recovers(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-infeasible.yaml"))
    obj = _wait_phase(sandbox, namespace, "mimo-infeasible", "Failed")
    planned = _condition(obj, "Planned")
    assert (planned["status"], planned["reason"]) == ("False", "NeedsMoreThanOneNode")
    assert "40.5 GiB" in planned["message"] and "72.7 GiB" in planned["message"]
    events = [e for e in _events(sandbox, namespace, "mimo-infeasible") if e["type"] == "Warning"]
    assert [e["message"] for e in events] == [planned["message"]]
    assert _children(sandbox, namespace, "mimo-infeasible") == []
    assert operator.requests(("apply",)) == 0

    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        "mimo",
        "mimo-infeasible",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"gpu": {"type": "H200-141GB"}, "parallelism": None}}),
    )
    obj = _wait_phase(sandbox, namespace, "mimo-infeasible", "Ready")
    assert obj["status"]["plan"]["gpusPerReplica"] == 4
    assert _condition(obj, "Planned")["status"] == "True"
    assert any(e["reason"] == "Planned" for e in _events(sandbox, namespace, "mimo-infeasible"))


def test_drift_is_repaired_and_deleting_the_deployment_removes_every_child(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h200.yaml"))
    _wait_phase(sandbox, namespace, "mimo-fp8-h200", "Ready")
    sts_path = ("-n", namespace, "get", "statefulset", "mimo-fp8-h200")
    original = get_json(sandbox, *sts_path)

    sandbox.kubectl("-n", namespace, "delete", "statefulset", "mimo-fp8-h200", "--wait=false")
    wait_for(
        lambda: (
            (s := json.loads(sandbox.kubectl(*sts_path, "-o", "json", check=False).stdout or "{}"))
            and s["metadata"]["uid"] != original["metadata"]["uid"]
        ),
        timeout=20,
        description="deleted StatefulSet recreated",
    )

    args = get_json(sandbox, *sts_path)["spec"]["template"]["spec"]["containers"][0]["args"]
    patch = [
        {"op": "replace", "path": "/spec/template/spec/containers/0/args/0", "value": "someone/else"},
        {"op": "add", "path": "/metadata/annotations", "value": {"team.example.com/owner": "ml-platform"}},
    ]
    sandbox.kubectl(
        "-n", namespace, "patch", "statefulset", "mimo-fp8-h200", "--type=json", "-p", json.dumps(patch)
    )
    repaired = wait_for(
        lambda: (
            (s := get_json(sandbox, *sts_path))["spec"]["template"]["spec"]["containers"][0]["args"] == args
            and s
        ),
        timeout=20,
        description="edited container args restored",
    )
    # A field the operator does not own survives the repair (server-side apply, one field manager).
    assert repaired["metadata"]["annotations"]["team.example.com/owner"] == "ml-platform"

    sandbox.kubectl("-n", namespace, "delete", "mimo", "mimo-fp8-h200")
    wait_for(
        lambda: _children(sandbox, namespace, "mimo-fp8-h200") == [] and not _pods(sandbox, namespace),
        timeout=60,
        description="children garbage-collected after the MimoDeployment was deleted",
    )


def test_scaling_through_the_scale_subresource_keeps_running_pods(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h200.yaml"))
    _wait_phase(sandbox, namespace, "mimo-fp8-h200", "Ready")
    first_uid = get_json(sandbox, "-n", namespace, "get", "pod", "mimo-fp8-h200-0")["metadata"]["uid"]

    sandbox.kubectl("-n", namespace, "scale", "mimo", "mimo-fp8-h200", "--replicas=2")
    obj = wait_for(
        lambda: (
            (o := _mimo(sandbox, namespace, "mimo-fp8-h200"))["status"].get("ready") == "2/2"
            and o["status"]["phase"] == "Ready"
            and o
        ),
        timeout=60,
        description="two replicas ready",
    )
    assert obj["status"]["replicas"] == 2
    assert get_json(sandbox, "-n", namespace, "get", "statefulset", "mimo-fp8-h200")["spec"]["replicas"] == 2
    assert "poddisruptionbudget.policy/mimo-fp8-h200" in _children(sandbox, namespace, "mimo-fp8-h200")
    assert get_json(sandbox, "-n", namespace, "get", "pod", "mimo-fp8-h200-0")["metadata"]["uid"] == first_uid

    sandbox.kubectl("-n", namespace, "scale", "mimo", "mimo-fp8-h200", "--replicas=1")
    wait_for(
        lambda: (
            _mimo(sandbox, namespace, "mimo-fp8-h200")["status"].get("ready") == "1/1"
            and "poddisruptionbudget.policy/mimo-fp8-h200"
            not in _children(sandbox, namespace, "mimo-fp8-h200")
        ),
        timeout=60,
        description="scaled back to one replica, budget pruned",
    )
    assert get_json(sandbox, "-n", namespace, "get", "pod", "mimo-fp8-h200-0")["metadata"]["uid"] == first_uid


def test_changing_what_pods_run_rolls_the_statefulset(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h200.yaml"))
    before = _wait_phase(sandbox, namespace, "mimo-fp8-h200", "Ready")
    first_uid = get_json(sandbox, "-n", namespace, "get", "pod", "mimo-fp8-h200-0")["metadata"]["uid"]
    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        "mimo",
        "mimo-fp8-h200",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"context": {"maxModelLen": 65536}}}),
    )
    after = _wait_phase(sandbox, namespace, "mimo-fp8-h200", "Ready")
    assert after["status"]["plan"]["maxModelLen"] == 65536
    assert after["status"]["plan"]["hash"] != before["status"]["plan"]["hash"]
    pod = wait_for(
        lambda: (
            (p := get_json(sandbox, "-n", namespace, "get", "pod", "mimo-fp8-h200-0"))["metadata"]["uid"]
            != first_uid
            and p
        ),
        timeout=60,
        description="pod replaced by the rolling update",
    )
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--max-model-len") + 1] == "65536"


def test_restarting_the_operator_changes_nothing(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h200.yaml"))
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-infeasible.yaml"))
    _wait_phase(sandbox, namespace, "mimo-fp8-h200", "Ready")
    _wait_phase(sandbox, namespace, "mimo-infeasible", "Failed")
    # Stopped first (kill waits for the process to exit), so no write of the old operator can land
    # after the snapshot: the versions below are the world the new operator starts from.
    operator.kill()
    versions = {
        obj["metadata"]["name"] + "/" + obj["kind"]: obj["metadata"]["resourceVersion"]
        for kind in ("mimo", "statefulsets", "services")
        for obj in get_json(sandbox, "-n", namespace, "get", kind)["items"]
    }

    restarted = OperatorProcess(sandbox, namespace, operator.log_path.parent).start()
    try:
        # Sync point: a reconcile's result is counted after its writes were sent, so two results
        # (one per deployment) mean both reconciles are complete; "changed" would mean a write.
        wait_for(
            lambda: (
                sum(
                    v
                    for k, v in restarted.metrics().items()
                    if k.startswith("mimo_operator_reconciles_total{")
                )
                >= 2
            ),
            timeout=30,
            description="both deployments reconciled after restart",
        )
        assert restarted.metrics().get('mimo_operator_reconciles_total{result="unchanged"}', 0) >= 2
        assert restarted.writes() == 0, restarted.metrics()
        assert restarted.metrics().get('mimo_operator_reconciles_total{result="changed"}', 0) == 0
    finally:
        restarted.kill()
    after = {
        obj["metadata"]["name"] + "/" + obj["kind"]: obj["metadata"]["resourceVersion"]
        for kind in ("mimo", "statefulsets", "services")
        for obj in get_json(sandbox, "-n", namespace, "get", kind)["items"]
    }
    assert after == versions  # nobody (kopf included) wrote to the deployments or their children


def test_a_missing_volume_claim_is_named_on_the_deployment_and_recovery_follows(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h100.yaml"))
    ready = wait_for(
        lambda: (
            (c := _condition(_mimo(sandbox, namespace, "mimo-fp8-h100"), "Ready"))["reason"]
            == "VolumeClaimMissing"
            and c
        ),
        timeout=60,
        description="Ready condition names the missing claim",
    )
    # The weights are fetched into the claim first: no vLLM pod exists to be stuck on it.
    assert _mimo(sandbox, namespace, "mimo-fp8-h100")["status"]["phase"] == "Downloading"
    assert "claimName mimo-weights does not exist" in ready["message"]
    events = _events(sandbox, namespace, "mimo-fp8-h100")
    assert any(e["type"] == "Warning" and e["reason"] == "VolumeClaimMissing" for e in events)
    weights_pvc(sandbox, namespace)
    _wait_phase(sandbox, namespace, "mimo-fp8-h100", "Ready", timeout=90)


def test_pods_refused_by_pod_security_are_explained(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    # vLLM's image runs as root, which the "restricted" Pod Security level refuses at admission.
    sandbox.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h200.yaml"))
    ready = wait_for(
        lambda: (
            (c := _condition(_mimo(sandbox, namespace, "mimo-fp8-h200"), "Ready"))["reason"]
            == "NoPodsCreated"
            and c
        ),
        timeout=60,
        description="Ready condition says the StatefulSet created no pods",
    )
    assert "Pod Security" in ready["message"] and "mimo-fp8-h200" in ready["message"]
    assert _mimo(sandbox, namespace, "mimo-fp8-h200")["status"]["phase"] == "Deploying"


def test_with_a_non_root_uid_pods_pass_restricted_pod_security_and_serve(
    sandbox: Sandbox, mimo_crd: str, namespace: str, tmp_path: Path
) -> None:
    # The same refusal as above, answered by the chart's vllmPods.runAsUser: the API server's own Pod
    # Security admission admits the pods, and the deployment becomes Ready.
    sandbox.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    weights_pvc(sandbox, namespace)
    with operator_in(sandbox, namespace, tmp_path, env={"MIMO_OPERATOR_VLLM_RUN_AS_USER": "1000"}):
        sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h100.yaml"))
        obj = _wait_phase(sandbox, namespace, "mimo-fp8-h100", "Ready")
        assert obj["status"]["readyReplicas"] == 1
        (pod,) = _pods(sandbox, namespace)
        assert pod["spec"]["securityContext"]["runAsUser"] == 1000
        assert pod["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_a_missing_secret_reported_by_the_kubelet_is_relayed(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    # The operator may not read Secrets; the kubelet finds out when it builds the container's env.
    # kwok does not simulate that, so the test writes the pod status a kubelet would write.
    doc = json.loads(
        json.dumps(
            {
                "apiVersion": "serving.mimo.dev/v1alpha1",
                "kind": "MimoDeployment",
                "metadata": {"name": "mimo-secret", "namespace": namespace},
                "spec": {
                    "gpu": {"type": "H200-141GB"},
                    "model": {"tokenSecretRef": {"name": "no-such-secret", "key": "t"}},
                },
            }
        )
    )
    sandbox.kubectl("apply", "-f", "-", input=json.dumps(doc))
    _wait_phase(sandbox, namespace, "mimo-secret", "Ready")
    status = {
        "phase": "Pending",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
            {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
            {"type": "PodScheduled", "status": "True"},
        ],
        "containerStatuses": [
            {
                "name": "vllm",
                "ready": False,
                "restartCount": 0,
                "image": "vllm/vllm-openai:v0.33.0",
                "imageID": "",
                "started": False,
                "state": {
                    "waiting": {
                        "reason": "CreateContainerConfigError",
                        "message": 'secret "no-such-secret" not found',
                    }
                },
            }
        ],
    }
    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        "pod",
        "mimo-secret-0",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    ready = wait_for(
        lambda: (
            (c := _condition(_mimo(sandbox, namespace, "mimo-secret"), "Ready"))["reason"]
            == "CreateContainerConfigError"
            and c
        ),
        timeout=60,
        description="Ready condition relays the kubelet's CreateContainerConfigError",
    )
    assert 'secret "no-such-secret" not found' in ready["message"]
    assert _mimo(sandbox, namespace, "mimo-secret")["status"]["phase"] == "Degraded"
