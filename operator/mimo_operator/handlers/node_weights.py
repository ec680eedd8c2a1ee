"""Node-local weights (spec.model.cache.hostPath with fetch: job): a copy on each node the vLLM pods
may run on, filled once per node, with the pods kept to nodes whose copy is complete.

The nodes to fill are exactly those the pods could be scheduled to: the pods' node selector (GPU
product label and spec.placement.nodeSelector), not cordoned, every NoSchedule/NoExecute taint
tolerated. Each gets one download Job pinned to it (render/weights.py render_node_fetch_job). When a
node's Job completed, the operator labels the node `weights.serving.mimo.dev/<digest>=<commit>` (the
label is the record: the Job is then pruned), and the StatefulSets require that label, so the
scheduler itself keeps pods off nodes without a copy (a label the pods select on, unlike a hint a
scheduler may ignore). The StatefulSets are created once one replica's pods have enough labelled nodes;
more replicas are scheduled as more nodes finish. A node added later gets its Job at the next
reconcile (every resync at the latest) and downloads only what it lacks: the fetcher resumes.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from mimo_operator.api import MimoDeployment
from mimo_operator.handlers.weights import WeightsGate, job_ended, job_report, progress_text, weights_gate
from mimo_operator.kube.cache import ChildKey, child_key
from mimo_operator.kube.client import ApiError, KubeClient
from mimo_operator.kube.resources import NODE
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, placement
from mimo_operator.render.weights import node_copy_label, render_node_fetch_job, revision_of

# A label value (core/v1 validation): what a commit sha is; anything else is recorded as "complete".
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
COMPLETE = "complete"


@dataclass(frozen=True)
class NodeCopies:
    """The nodes the pods may run on, and the commit of each one's verified copy (if it has one)."""

    eligible: tuple[str, ...]
    ready: dict[str, str]

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(node for node in self.eligible if node not in self.ready)


def node_copies(nodes: list[dict[str, Any]], label: str, tolerations: list[dict[str, Any]]) -> NodeCopies:
    """From nodes that match the pods' node selector: those a pod may be scheduled to, and which of
    them carry the copy's label."""
    eligible = sorted(
        node["metadata"]["name"] for node in nodes if placement.schedulable_for(node, tolerations)
    )
    ready = {}
    for node in nodes:
        name = node["metadata"]["name"]
        value = (node["metadata"].get("labels") or {}).get(label)
        if value is not None and name in eligible:
            ready[name] = value
    return NodeCopies(tuple(eligible), ready)


def copy_label_value(report: dict[str, Any] | None) -> str:
    sha = str((report or {}).get("sha") or "")
    return sha if _LABEL_VALUE.match(sha) else COMPLETE


def nodes_per_replica(plan: Plan) -> int:
    """Nodes one replica's pods need: one pod per node."""
    return max(1, plan.gpus_per_replica // max(1, plan.gpus_per_pod))


def node_gate(
    md: MimoDeployment,
    config: RenderConfig,
    plan: Plan,
    copies: NodeCopies,
    per_node: dict[str, WeightsGate],
    running: tuple[str, dict[str, Any]] | None = None,
) -> WeightsGate:
    """What the nodes' copies mean for the deployment (pure): Ready once one replica can be placed on
    nodes holding a copy; Failed when the nodes whose download has not failed cannot get there.
    `running` is one node still downloading and its fetcher's latest report, for percent and ETA."""
    needed = nodes_per_replica(plan)
    ready, total = len(copies.ready), len(copies.eligible)
    name = f"{md.spec.model.name}@{revision_of(md)}"
    base = weights_gate(md, config, "", None, None)
    commits = sorted(set(copies.ready.values()) - {COMPLETE})
    progress = f"{ready}/{total} nodes"
    rate: dict[str, Any] = {}
    if running is not None and (percent := progress_text(running[1])) is not None:
        # Nodes download side by side at about the same rate: one of them stands for the rest.
        progress += f", {running[0]} {percent}"
        rate = {"bytes_done": running[1].get("bytesDone"), "bytes_total": running[1].get("bytesTotal")}
        rate["bytes_per_second"] = running[1].get("bytesPerSecond")
    weights = base.weights.model_copy(
        update={
            **rate,
            "progress": progress,
            "sha": commits[0] if len(commits) == 1 else None,
            "job": None,
        }
    )
    failed = {node: gate for node, gate in per_node.items() if gate.state == "Failed"}
    failures = "; ".join(f"on node {node}: {gate.message}" for node, gate in sorted(failed.items()))
    counted = f"{ready} of {total} nodes hold a verified copy and one replica needs {needed}"
    if ready >= needed:
        message = f"{name} verified on {ready} of {total} nodes" + (f" (failed {failures})" if failed else "")
        return WeightsGate("Ready", "Complete", message, weights)
    if total == 0:
        return WeightsGate(
            "Downloading",
            "NoNodeForCopy",
            f"no schedulable node matches the pods' node selector "
            f"{placement.label_selector(placement.node_selector(md, plan))} and tolerations, so no copy "
            "of the weights can be made; it starts when such a node joins",
            weights,
        )
    if total - len(failed) < needed:
        _, first = min(failed.items())
        return WeightsGate("Failed", first.reason, f"{counted}, and {failures}", weights)
    waiting = sorted(per_node.items())
    stuck = next((gate for _, gate in waiting if gate.reason == "DownloadPodNotCreated"), None)
    if stuck is not None:
        return WeightsGate("Downloading", stuck.reason, f"{counted}: {stuck.message}", weights)
    busy = ", ".join(node for node, gate in waiting if gate.state == "Downloading")
    return WeightsGate("Downloading", "Downloading", f"{counted}; downloading on {busy}", weights)


class NodeAccessDenied(Exception):
    """The operator may not read or label nodes: the chart grants it with policy.allowHostPath."""


async def _label(client: KubeClient, node: str, label: str, value: str) -> None:
    try:
        await client.merge_patch(NODE.item(None, node), {"metadata": {"labels": {label: value}}})
    except ApiError as exc:
        if exc.status == 404:  # the node left meanwhile: nothing to record
            return
        if exc.status == 403:
            raise NodeAccessDenied(f"the operator may not label node {node}: {exc.message}") from None
        raise


async def node_local_children(
    client: KubeClient,
    md: MimoDeployment,
    plan: Plan,
    config: RenderConfig,
    desired: list[dict[str, Any]],
    live: dict[ChildKey, dict[str, Any]],
) -> tuple[list[dict[str, Any]], WeightsGate]:
    """The desired children with a download Job for each node still without a copy, the StatefulSets
    held back until one replica fits on nodes with one; labels the nodes whose Job completed."""
    tolerations = placement.tolerations(md, plan)
    label = node_copy_label(md)
    try:
        nodes = await client.list(
            NODE.collection(None), placement.label_selector(placement.node_selector(md, plan))
        )
    except ApiError as exc:
        if exc.status != 403:
            raise
        raise NodeAccessDenied(f"the operator may not list nodes: {exc.message}") from None
    copies = node_copies(nodes, label, tolerations)
    now = datetime.datetime.now(datetime.UTC)
    jobs: dict[str, dict[str, Any]] = {}
    per_node: dict[str, WeightsGate] = {}
    running: tuple[str, dict[str, Any]] | None = None
    for node in copies.missing:
        job = render_node_fetch_job(md, config, node, tolerations)
        name = job["metadata"]["name"]
        live_job = live.get(child_key(job))
        # A Job that ended is read for its commit or why it failed; of the running ones only the first
        # that answers is asked for its percent (each costs a pod list and a request per look).
        report = None
        if live_job is not None and (job_ended(live_job) or running is None):
            report = await job_report(client, md.metadata.namespace, name, live_job)
            if report is not None and not job_ended(live_job):
                running = (node, report)
        gate = weights_gate(md, config, name, live_job, report, now)
        if gate.state == "Ready":
            # The copy is verified: the label records it and the Job is done (pruned below).
            value = copy_label_value(report)
            await _label(client, node, label, value)
            copies = NodeCopies(copies.eligible, {**copies.ready, node: value})
            continue
        jobs[node], per_node[node] = job, gate
    gate = node_gate(md, config, plan, copies, per_node, running)
    desired = [*desired, *jobs.values()]
    if gate.state == "Ready":
        return desired, gate
    return [obj for obj in desired if obj["kind"] != "StatefulSet"], gate.holding_back(live)
