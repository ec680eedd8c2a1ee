"""Node-local weights (hostPath with fetch: job): which nodes get a copy, the per-node download Jobs,
the StatefulSets kept to nodes whose copy is complete, and what the copies mean for the deployment."""

from __future__ import annotations

import datetime
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mimo_operator.api import constants, parse_mimo_deployment
from mimo_operator.handlers.node_weights import (
    COMPLETE,
    NodeCopies,
    copy_label_value,
    node_copies,
    node_gate,
    nodes_per_replica,
)
from mimo_operator.handlers.weights import weights_gate
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, placement, plan_for, render_children
from mimo_operator.render.weights import (
    node_copy_label,
    render_node_fetch_job,
    weights_location,
)
from tests.unit.test_render_golden import GOLDEN

PINNED = "0123456789abcdef0123456789abcdef01234567"
NODE_LOCAL = {"hostPath": {"path": "/mnt/nvme/mimo"}, "fetch": "job"}


def _md(cache: dict[str, Any] | None = None, placement_: dict[str, Any] | None = None, **model: Any) -> Any:
    body = yaml.safe_load((GOLDEN / "fp8-h200.input.yaml").read_text())
    body["spec"].setdefault("model", {}).update({"revision": PINNED, **model})
    body["spec"]["model"]["cache"] = cache or NODE_LOCAL
    if placement_ is not None:
        body["spec"]["placement"] = placement_
    return parse_mimo_deployment(body)


def _plan(md: Any) -> Plan:
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    return plan


def _node(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def test_statefulset_pods_are_kept_to_nodes_whose_copy_is_complete() -> None:
    md = _md()
    children = render_children(md, _plan(md), RenderConfig())
    for child in children:
        kubernetes_validate.validate(child, "1.35.0", strict=True)
    (sts,) = [c for c in children if c["kind"] == "StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [{"matchExpressions": [{"key": node_copy_label(md), "operator": "Exists"}]}]
    assert node_copy_label(md).startswith("weights.serving.mimo.dev/")
    # vLLM reads the node's copy offline, from the directory the Jobs fill.
    vllm = pod["containers"][0]
    assert vllm["args"][0] == f"/models/XiaomiMiMo--MiMo-V2-Flash/{PINNED}"
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in vllm["env"]
    assert {
        "name": "model-cache",
        "hostPath": {"path": "/mnt/nvme/mimo", "type": "DirectoryOrCreate"},
    } in pod["volumes"]
    # No Job among the rendered children: the nodes decide how many (handlers/node_weights.py).
    assert not [c for c in children if c["kind"] == "Job"]
    assert weights_location(md, RenderConfig()) == (
        f"hostPath:/mnt/nvme/mimo/XiaomiMiMo--MiMo-V2-Flash/{PINNED} on nodes labelled {node_copy_label(md)}"
    )


def test_the_copy_requirement_joins_every_node_selector_term_the_user_gave() -> None:
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
    rack = {"key": "rack", "operator": "In", "values": ["r1"]}
    user = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [zone]}, {"matchExpressions": [rack]}]
            }
        }
    }
    md = _md(placement_={"affinity": user})
    (sts,) = [c for c in render_children(md, _plan(md), RenderConfig()) if c["kind"] == "StatefulSet"]
    required = sts["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = required["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    copied = {"key": node_copy_label(md), "operator": "Exists"}
    # Either zone or rack, as the user said, and in both cases a node with a copy.
    assert terms == [{"matchExpressions": [zone, copied]}, {"matchExpressions": [rack, copied]}]


def test_each_node_gets_a_job_pinned_to_it_with_the_pods_tolerations() -> None:
    md = _md(placement_={"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm"}]})
    plan = _plan(md)
    tolerations = placement.tolerations(md, plan)
    jobs = [render_node_fetch_job(md, RenderConfig(), node, tolerations) for node in ("gpu-a", "gpu-b")]
    for job in jobs:
        kubernetes_validate.validate(job, "1.35.0", strict=True)
    assert len({job["metadata"]["name"] for job in jobs}) == 2
    for job, node in zip(jobs, ("gpu-a", "gpu-b"), strict=True):
        pod = job["spec"]["template"]["spec"]
        term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["nodeSelectorTerms"] == [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
        assert job["metadata"]["annotations"] == {constants.ANNOTATION_NODE: node}
        # It may land wherever a vLLM pod may: the GPU taint and the user's own.
        (sts,) = [c for c in render_children(md, plan, RenderConfig()) if c["kind"] == "StatefulSet"]
        assert pod["tolerations"] == sts["spec"]["template"]["spec"]["tolerations"]
        assert pod["volumes"] == [
            {"name": "model-cache", "hostPath": {"path": "/mnt/nvme/mimo", "type": "DirectoryOrCreate"}}
        ]
        args = pod["containers"][0]["args"]
        assert args[args.index("--dest") + 1] == f"/models/XiaomiMiMo--MiMo-V2-Flash/{PINNED}"


def test_the_copy_label_names_repository_revision_and_directory() -> None:
    base = node_copy_label(_md())
    assert node_copy_label(_md()) == base
    assert node_copy_label(_md(revision="f" * 40)) != base
    assert node_copy_label(_md({"hostPath": {"path": "/mnt/other"}, "fetch": "job"})) != base
    assert len(base.split("/", 1)[1]) <= 63
    # Not the deployment's name or namespace: another deployment of the same weights and directory,
    # in any namespace, finds the copies already there.
    other = _md()
    other_body = other.model_dump(by_alias=True, exclude_none=True, mode="json")
    other_body["metadata"] = {"name": "elsewhere", "namespace": "team-b"}
    assert node_copy_label(parse_mimo_deployment(other_body)) == base


@pytest.mark.parametrize(
    ("taint", "tolerated"),
    [
        ({"key": "nvidia.com/gpu", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "value": "llm", "effect": "NoSchedule"}, True),
        ({"key": "dedicated", "value": "batch", "effect": "NoSchedule"}, False),
        ({"key": "maintenance", "effect": "NoExecute"}, False),
        ({"key": "maintenance", "effect": "PreferNoSchedule"}, True),
    ],
)
def test_a_node_gets_a_copy_only_where_a_vllm_pod_could_be_scheduled(
    taint: dict[str, str], tolerated: bool
) -> None:
    md = _md(placement_={"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm"}]})
    tolerations = placement.tolerations(md, _plan(md))
    assert placement.schedulable_for(_node("n", taints=[taint]), tolerations) is tolerated
    assert placement.schedulable_for(_node("n", unschedulable=True), tolerations) is False
    assert placement.tolerates([{"operator": "Exists"}], taint)


def test_copies_are_the_labelled_nodes_among_those_a_pod_may_run_on() -> None:
    label = "weights.serving.mimo.dev/abc"
    nodes = [
        _node("a", {label: PINNED}),
        _node("b"),
        _node("c", {label: PINNED}, unschedulable=True),
    ]
    copies = node_copies(nodes, label, [])
    assert copies == NodeCopies(("a", "b"), {"a": PINNED})
    assert copies.missing == ("b",)
    assert copy_label_value({"sha": PINNED}) == PINNED
    assert copy_label_value({}) == COMPLETE
    assert copy_label_value({"sha": "not a/label value"}) == COMPLETE


def _job(condition: str | None, message: str = "") -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True", "message": message}] if condition else []
    return {
        "metadata": {"creationTimestamp": "2026-12-04T00:00:00Z"},
        "status": {"active": 1, "conditions": conditions},
    }


def _gate_of(md: Any, job: dict[str, Any] | None, report: dict[str, Any] | None = None) -> Any:
    return weights_gate(md, RenderConfig(), "j", job, report, datetime.datetime.now(datetime.UTC))


def test_the_deployment_serves_once_one_replica_fits_on_nodes_with_a_copy() -> None:
    md = _md()
    plan = _plan(md)
    assert nodes_per_replica(plan) == 1
    copies = NodeCopies(("a", "b", "c"), {"a": PINNED})
    gate = node_gate(
        md, RenderConfig(), plan, copies, {"b": _gate_of(md, _job(None)), "c": _gate_of(md, _job(None))}
    )
    assert (gate.state, gate.reason) == ("Ready", "Complete")
    assert gate.weights.progress == "1/3 nodes" and gate.weights.sha == PINNED
    assert "verified on 1 of 3 nodes" in gate.message

    waiting = node_gate(
        md,
        RenderConfig(),
        plan,
        NodeCopies(("a", "b"), {}),
        {"a": _gate_of(md, _job(None)), "b": _gate_of(md, _job(None))},
    )
    assert (waiting.state, waiting.reason) == ("Downloading", "Downloading")
    assert waiting.message.startswith("0 of 2 nodes hold a verified copy and one replica needs 1")
    assert "downloading on a, b" in waiting.message


def test_failures_on_some_nodes_fail_the_deployment_only_when_no_replica_can_be_placed() -> None:
    md = _md()
    plan = _plan(md)
    full = {"reason": "DiskTooSmall", "message": "the volume holds 100 GiB, the checkpoint needs 292 GiB"}
    failed = _gate_of(md, _job("Failed", "exit code 12"), full)
    still = node_gate(
        md, RenderConfig(), plan, NodeCopies(("a", "b"), {}), {"a": failed, "b": _gate_of(md, _job(None))}
    )
    assert still.state == "Downloading"
    gate = node_gate(md, RenderConfig(), plan, NodeCopies(("a",), {}), {"a": failed})
    assert (gate.state, gate.reason) == ("Failed", "DiskTooSmall")
    assert "on node a: weights download failed: the volume holds 100 GiB" in gate.message
    # With a copy elsewhere the deployment serves, and says where a copy could not be made.
    served = node_gate(md, RenderConfig(), plan, NodeCopies(("a", "b"), {"b": PINNED}), {"a": failed})
    assert served.state == "Ready" and "failed on node a" in served.message


def test_no_node_to_copy_to_is_said_with_the_selector() -> None:
    md = _md()
    plan = _plan(md)
    gate = node_gate(md, RenderConfig(), plan, NodeCopies((), {}), {})
    assert (gate.state, gate.reason) == ("Downloading", "NoNodeForCopy")
    assert "nvidia.com/gpu.product=NVIDIA-H200" in gate.message


def test_a_running_nodes_percent_and_time_left_stand_for_the_copies_under_way() -> None:
    md = _md()
    plan = _plan(md)
    report = {"bytesDone": 37, "bytesTotal": 100, "bytesPerSecond": 5, "etaSeconds": 2460}
    downloading = {node: _gate_of(md, _job(None)) for node in ("a", "b")}
    gate = node_gate(md, RenderConfig(), plan, NodeCopies(("a", "b"), {}), downloading, ("a", report))
    assert gate.weights.progress == "0/2 nodes, a 37% ETA 41m"
    assert (gate.weights.bytes_done, gate.weights.bytes_total, gate.weights.bytes_per_second) == (37, 100, 5)
    # A fetcher that has not said how far it is yet leaves the count alone.
    quiet = node_gate(md, RenderConfig(), plan, NodeCopies(("a", "b"), {}), downloading, ("a", {}))
    assert quiet.weights.progress == "0/2 nodes" and quiet.weights.bytes_done is None
