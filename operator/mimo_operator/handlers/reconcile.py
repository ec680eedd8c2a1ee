"""One level-triggered reconcile of one MimoDeployment, top to bottom (architecture.md):

parse -> plan -> render -> check ownership -> server-side apply what differs -> prune -> status.
The same function serves create, update, restart and resync. It writes nothing when the world
already matches, and on an invalid spec or an infeasible plan it changes no child at all.
"""

from __future__ import annotations

import datetime
import functools
import logging
import socket
from dataclasses import dataclass, field
from typing import Any

from mimo_operator.api import MimoDeployment, MimoDeploymentStatus, SpecInvalid, parse_mimo_deployment
from mimo_operator.api import constants as c
from mimo_operator.kube.cache import ChildCache
from mimo_operator.kube.children import (
    ChildRejected,
    Owner,
    claim_exists,
    find_conflicts,
    list_pods,
    observe_children,
    sync_children,
)
from mimo_operator.kube.client import KubeClient
from mimo_operator.kube.resources import KINDS, MIMO
from mimo_operator.planner import PlanError
from mimo_operator.render import RenderConfig, child_kinds, plan_for, plan_hash, render_children
from mimo_operator.render.autoscaling import autoscaling_status
from mimo_operator.render.probes import startup_budget_seconds
from mimo_operator.render.status import STUCK_CONTAINER_REASONS, compute_status, failed_status, pod_problems

logger = logging.getLogger(__name__)
POD_PROBLEM_REASONS = STUCK_CONTAINER_REASONS | {"Unschedulable", "NoPodsCreated", "VolumeClaimMissing"}
HOSTNAME = socket.gethostname()
CONFLICT_RECHECK_SECONDS = 30.0


@dataclass
class Outcome:
    phase: str | None
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    written: dict[str, Any] | None = None  # the MimoDeployment after this reconcile's status write
    applied_states: list[dict[str, Any]] = field(default_factory=list)  # children as applied
    pruned_keys: list[tuple[str, str, str]] = field(default_factory=list)
    retry_after: float | None = None  # look again this soon even without an event
    events: list[str] = field(default_factory=list)

    @property
    def status_written(self) -> bool:
        return self.written is not None

    gpus_planned: int = 0  # GPUs the desired replicas hold
    gpus_ready: int = 0  # GPUs of replicas that are ready
    scaling_limited: bool = False  # the autoscaler is held at maxReplicas and wants more
    replicas: int = 0  # desired replicas
    ready_replicas: int = 0
    startup_budget_seconds: int = 0  # how long one replica may take to load (the startupProbe's budget)


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status_of(body: dict[str, Any]) -> MimoDeploymentStatus:
    try:
        return MimoDeploymentStatus.model_validate(body.get("status") or {})
    except ValueError:
        return MimoDeploymentStatus()


async def _write_status(
    client: KubeClient, body: dict[str, Any], old: MimoDeploymentStatus, new: MimoDeploymentStatus
) -> dict[str, Any] | None:
    """Patch the status if it changed; the object as written, so the controller can tell the watch
    event of its own write from a change someone else made."""
    if new == old:
        return None
    meta = body["metadata"]
    current = body.get("status") or {}
    patch: dict[str, Any] = new.model_dump(by_alias=True, exclude_none=True, mode="json")
    for key in current:
        patch.setdefault(key, None)  # merge patch: null removes what the new status no longer has
    return await client.merge_patch(f"{MIMO.item(meta['namespace'], meta['name'])}/status", {"status": patch})


async def post_event(client: KubeClient, body: dict[str, Any], kind: str, reason: str, message: str) -> None:
    meta = body["metadata"]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "mimo-operator"},
        "reportingComponent": "mimo-operator",
        "reportingInstance": HOSTNAME,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    await client.create(KINDS[("v1", "Event")].collection(meta["namespace"]), event)


def _announces(old: MimoDeploymentStatus, new: MimoDeploymentStatus, type_: str) -> bool:
    """A condition's status or reason changed: worth one event (resyncs repeat nothing)."""
    before = next((x for x in old.conditions if x.type == type_), None)
    after = next((x for x in new.conditions if x.type == type_), None)
    if after is None:
        return False
    return before is None or (before.status, before.reason, before.message) != (
        after.status,
        after.reason,
        after.message,
    )


async def _fail(
    client: KubeClient, body: dict[str, Any], old: MimoDeploymentStatus, reason: str, message: str
) -> Outcome:
    generation = body["metadata"].get("generation")
    new = failed_status(old, generation, reason, message, utcnow())
    outcome = Outcome(phase="Failed")
    outcome.written = await _write_status(client, body, old, new)
    if _announces(old, new, "Planned"):
        await post_event(client, body, "Warning", reason, message)
        outcome.events.append(reason)
    return outcome


async def _missing_claims(client: KubeClient, md: MimoDeployment) -> list[tuple[str, str]]:
    """The weights claim the spec names, if it does not exist (checked even with zero replicas).
    Secrets are not checked: the operator is deliberately not allowed to read them."""
    cache = md.spec.model.cache
    if cache is None or cache.persistent_volume_claim is None:
        return []
    claim = cache.persistent_volume_claim.claim_name
    if await claim_exists(client, md.metadata.namespace, claim):
        return []
    return [
        (
            "VolumeClaimMissing",
            f"spec.model.cache.persistentVolumeClaim.claimName {claim} does not exist in namespace "
            f"{md.metadata.namespace}",
        )
    ]


async def reconcile(
    client: KubeClient,
    body: dict[str, Any],
    config: RenderConfig,
    field_manager: str,
    cache: ChildCache | None = None,
) -> Outcome:
    old = _status_of(body)
    try:
        md = parse_mimo_deployment(body)
    except SpecInvalid as exc:
        return await _fail(client, body, old, "SpecInvalid", str(exc))
    result = plan_for(md.spec)
    if isinstance(result, PlanError):
        return await _fail(client, body, old, result.reason, result.message)

    digest = plan_hash(md, result, config)
    desired = render_children(md, result, config, digest)
    owner = Owner(md.metadata.namespace, md.metadata.name, md.metadata.uid)
    kinds = child_kinds(config)
    if cache is None:
        live = await observe_children(client, owner, kinds)
    else:
        live = await cache.children(client, owner.namespace, owner.name, kinds)
    conflicts = await find_conflicts(client, owner, desired, live)
    if conflicts:
        message = (
            f"{', '.join(conflicts)} already exist and are not owned by this MimoDeployment; "
            "the operator will not adopt or overwrite them: rename or delete them"
        )
        outcome = await _fail(client, body, old, "ChildNameTaken", message)
        # The stranger is not watched: look again, so removing it recovers without waiting for resync.
        outcome.retry_after = CONFLICT_RECHECK_SECONDS
        return outcome

    try:
        sync = await sync_children(client, owner, desired, live, field_manager)
    except ChildRejected as exc:
        return await _fail(client, body, old, "ChildRejected", str(exc))
    expected = sum(1 for obj in desired if obj["kind"] == "StatefulSet")
    status_of = functools.partial(
        compute_status,
        md,
        result,
        digest,
        sync.statefulsets,
        expected,
        utcnow(),
        autoscaler=sync.autoscaler,
        keda_available=config.keda_available,
        scaling=autoscaling_status(md, result, config),
    )
    new = status_of()
    if new.phase != "Ready":
        # Only a deployment that is not serving pays for reading its pods: why are they not ready?
        problems = await _missing_claims(client, md)
        problems += pod_problems(await list_pods(client, owner), sync.statefulsets)
        if problems:
            new = status_of(problems=problems)
    outcome = Outcome(
        phase=new.phase,
        applied=sync.applied,
        pruned=sync.pruned,
        applied_states=sync.states,
        pruned_keys=sync.pruned_keys,
        gpus_planned=result.gpus_per_replica * (new.replicas or 0),
        gpus_ready=result.gpus_per_replica * (new.ready_replicas or 0),
        scaling_limited=any(x.type == "ScalingLimited" and x.status == "True" for x in new.conditions),
        replicas=new.replicas or 0,
        ready_replicas=new.ready_replicas or 0,
        startup_budget_seconds=startup_budget_seconds(md, result, config),
    )
    outcome.written = await _write_status(client, body, old, new)
    if _announces(old, new, "Ready") and new.phase == "Ready":
        await post_event(client, body, "Normal", "Ready", f"{new.ready} replicas ready: {result.summary}")
        outcome.events.append("Ready")
    if old.phase == "Failed" and _announces(old, new, "Planned"):
        await post_event(client, body, "Normal", "Planned", result.summary)
        outcome.events.append("Planned")
    ready = next((x for x in new.conditions if x.type == "Ready"), None)
    if ready and ready.reason in POD_PROBLEM_REASONS and _announces(old, new, "Ready"):
        await post_event(client, body, "Warning", ready.reason, ready.message)
        outcome.events.append(ready.reason)
    for type_, warn_when in (("Autoscaling", "False"), ("ScalingLimited", "True")):
        cond = next((x for x in new.conditions if x.type == type_), None)
        if (
            cond
            and cond.status == warn_when
            and cond.reason != "AutoscalerPending"
            and _announces(old, new, type_)
        ):
            await post_event(client, body, "Warning", cond.reason, cond.message)
            outcome.events.append(cond.reason)
    return outcome
