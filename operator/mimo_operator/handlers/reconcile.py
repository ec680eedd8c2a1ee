"""One level-triggered reconcile of one MimoDeployment, top to bottom (architecture.md):

parse -> plan -> render -> check ownership -> server-side apply what differs -> prune -> status.
The same function serves create, update, restart and resync. It writes nothing when the world
already matches, and on an invalid spec, an infeasible plan or a child the API server refuses it
changes no child at all and says why in a condition and one Warning event.

Crash safety: events are posted before the status that records their transition (handlers/events.py
names them so a repeat is a no-op), and the status is written with the resourceVersion it was computed
from, so a reconcile that started from a stale copy of the object cannot overwrite a newer status.
"""

from __future__ import annotations

import datetime
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

from mimo_operator.api import (
    MimoDeployment,
    MimoDeploymentStatus,
    SpecInvalid,
    constants,
    parse_mimo_deployment,
)
from mimo_operator.api.policy import REASON as POLICY_REASON
from mimo_operator.api.policy import AuthorPolicy
from mimo_operator.handlers import events
from mimo_operator.handlers.node_weights import NodeAccessDenied, node_local_children
from mimo_operator.handlers.weights import (
    POD_CREATION_GRACE_SECONDS,
    WeightsGate,
    controller_name,
    gate_children,
    job_report,
    reported_config,
    shared_download,
    shared_job,
    weights_gate,
    without_job,
)
from mimo_operator.kube.cache import ChildCache, ChildKey, child_key
from mimo_operator.kube.children import (
    ChildRejected,
    Owner,
    SyncResult,
    claim_exists,
    find_conflicts,
    list_pods,
    sync_children,
)
from mimo_operator.kube.client import ApiError, KubeClient
from mimo_operator.kube.resources import MIMO
from mimo_operator.planner import Plan, PlanError
from mimo_operator.render import RenderConfig, child_kinds, plan_for, plan_hash, render_children
from mimo_operator.render.autoscaling import autoscaling_status
from mimo_operator.render.children import render_download_children
from mimo_operator.render.conditions import set_condition
from mimo_operator.render.diagnosis import STUCK_CONTAINER_REASONS, pod_problems
from mimo_operator.render.planning import AWAITING_CHECKPOINT_CONFIG
from mimo_operator.render.probes import cold_start_for, startup_budget_seconds
from mimo_operator.render.status import compute_status, failed_status
from mimo_operator.render.weights import node_local, render_fetch_job

logger = logging.getLogger(__name__)
POD_PROBLEM_REASONS = STUCK_CONTAINER_REASONS | {"Unschedulable", "NoPodsCreated", "VolumeClaimMissing"}
CONFLICT_RECHECK_SECONDS = 30.0
PREDECESSOR_RECHECK_SECONDS = 2.0
# A child the API server refuses for a reason someone may fix outside the spec (a quota raised, an
# admission policy changed): looked at again this often, without an event each time.
REFUSAL_RECHECK_SECONDS = 30.0


class StaleObject(Exception):
    """The MimoDeployment changed (or vanished) since the copy this reconcile started from was read:
    its status write was refused with 409/404. Nothing is lost; reconcile again from a fresh copy."""

    def __init__(self, status: int) -> None:
        super().__init__(f"status write refused with {status}: the object changed since it was read")
        self.gone = status == 404


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
    gpus_planned: int = 0  # GPUs the desired replicas hold
    gpus_ready: int = 0  # GPUs of replicas that are ready
    scaling_limited: bool = False  # the autoscaler is held at maxReplicas and wants more
    replicas: int = 0  # desired replicas
    ready_replicas: int = 0
    startup_budget_seconds: int = 0  # how long one replica may take to load (the startupProbe's budget)

    @property
    def status_written(self) -> bool:
        return self.written is not None


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
    """Patch the status if it changed, only onto the version it was computed from; the object as
    written, so the controller can tell the watch event of its own write from someone else's change."""
    if new == old:
        return None
    meta = body["metadata"]
    current = body.get("status") or {}
    patch: dict[str, Any] = new.model_dump(by_alias=True, exclude_none=True, mode="json")
    for key in current:
        patch.setdefault(key, None)  # merge patch: null removes what the new status no longer has
    precondition = {"resourceVersion": meta["resourceVersion"]} if meta.get("resourceVersion") else {}
    try:
        return await client.merge_patch(
            f"{MIMO.item(meta['namespace'], meta['name'])}/status",
            {"metadata": precondition, "status": patch},
        )
    except ApiError as exc:
        if exc.status in (404, 409):
            raise StaleObject(exc.status) from None
        raise


async def _record(
    client: KubeClient,
    body: dict[str, Any],
    old: MimoDeploymentStatus,
    new: MimoDeploymentStatus,
    announcements: list[events.Announcement],
    outcome: Outcome,
) -> Outcome:
    """Announce, then write the status: in this order a crash between the two loses no event."""
    for announcement in announcements:
        await events.post(client, body, announcement)
        outcome.events.append(announcement.reason)
    outcome.written = await _write_status(client, body, old, new)
    return outcome


async def _fail(
    client: KubeClient,
    body: dict[str, Any],
    old: MimoDeploymentStatus,
    reason: str,
    message: str,
    retry_after: float | None = None,
) -> Outcome:
    generation = body["metadata"].get("generation")
    new = failed_status(old, generation, reason, message, utcnow())
    outcome = Outcome(phase="Failed", retry_after=retry_after)
    return await _record(
        client, body, old, new, events.failure_announcements(old, new, reason, message), outcome
    )


# Which refusal a 403 is, by the words the API server gives: a ResourceQuota's, or the chart's write
# scope (charts/mimo-operator/templates/write-scope.yaml, a ValidatingAdmissionPolicy) for a namespace
# that is protected or did not opt in. Anything else is the cluster's RBAC or another policy.
_FORBIDDEN_BY_MARKER = (
    ("exceeded quota", "QuotaExceeded"),
    ("is protected from the mimo-operator", "NamespaceProtected"),
    ("has not opted in to the mimo-operator", "NamespaceNotEnabled"),
)


def refusal(exc: ApiError, what: str) -> tuple[str, str]:
    """(reason, message) for a write the API server refused: the server's own words, which name the
    quota and its numbers, the admission policy, or the invalid field."""
    if exc.status == 403:
        reason = next(
            (reason for marker, reason in _FORBIDDEN_BY_MARKER if marker in exc.message), "ChildForbidden"
        )
    elif exc.status == 409:
        reason = "ChildConflict"
    else:
        reason = "ChildRejected"
    return reason, f"the API server refuses {what}: {exc.message}"


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


async def _serving_status(
    client: KubeClient,
    md: MimoDeployment,
    plan: Plan,
    digest: str,
    statefulsets: list[dict[str, Any]],
    expected: int,
    autoscaler: dict[str, Any] | None,
    config: RenderConfig,
    owner: Owner,
) -> MimoDeploymentStatus:
    status_of = functools.partial(
        compute_status,
        md,
        plan,
        digest,
        statefulsets,
        expected,
        utcnow(),
        autoscaler=autoscaler,
        keda_available=config.keda_available,
        scaling=autoscaling_status(md, plan, config),
        cold=cold_start_for(md, plan, config),
    )
    new = status_of()
    if new.phase == "Ready":
        return new
    # Only a deployment that is not serving pays for reading its pods: why are they not ready?
    problems = await _missing_claims(client, md)
    problems += pod_problems(await list_pods(client, owner), statefulsets)
    return status_of(problems=problems) if problems else new


async def _apply(
    client: KubeClient,
    body: dict[str, Any],
    old: MimoDeploymentStatus,
    owner: Owner,
    desired: list[dict[str, Any]],
    live: dict[ChildKey, dict[str, Any]],
    field_manager: str,
    kept: tuple[ChildKey, ...],
    shareable: frozenset[ChildKey] = frozenset(),
) -> SyncResult | Outcome:
    """Apply what differs and prune what is no longer wanted, leaving `kept` as it is; the Outcome
    instead when a child's name is taken or the API server refuses one (no child changed).
    `shareable` children may already exist under another deployment (kube/children.py)."""
    conflicts = await find_conflicts(client, owner, desired, live, shareable)
    if conflicts.strangers:
        taken = (
            f"{', '.join(conflicts.strangers)} already exist and are not owned by this MimoDeployment; "
            "the operator will not adopt or overwrite them: rename or delete them"
        )
        # The stranger is not watched: look again, so removing it recovers without waiting for resync.
        return await _fail(client, body, old, "ChildNameTaken", taken, CONFLICT_RECHECK_SECONDS)
    if conflicts.predecessors:
        # Deleted and created again under the same name: wait for the garbage collector, quietly.
        return Outcome(phase=None, retry_after=PREDECESSOR_RECHECK_SECONDS)
    try:
        return await sync_children(client, owner, desired, live, field_manager, keep=kept)
    except ChildRejected as exc:
        return await _fail(client, body, old, "ChildRejected", str(exc))
    except ApiError as exc:
        if exc.status not in (400, 403, 409, 422):
            raise
        reason, message = refusal(exc, "a child of this MimoDeployment")
        return await _fail(client, body, old, reason, message, REFUSAL_RECHECK_SECONDS)


async def _fetch_before_planning(
    client: KubeClient,
    body: dict[str, Any],
    md: MimoDeployment,
    old: MimoDeploymentStatus,
    config: RenderConfig,
    field_manager: str,
    owner: Owner,
    live: dict[ChildKey, dict[str, Any]],
    report: dict[str, Any] | None,
    shared: dict[str, Any] | None,
) -> Outcome:
    """spec.model.configFrom: checkpoint, before the download Job reported the config.json the plan
    comes from: only the weights' children (claim, Job, NetworkPolicy) are applied; whatever else
    exists (a deployment serving the previous revision) is kept exactly as it is."""
    desired = render_download_children(md, config)
    job = next(obj for obj in desired if obj["kind"] == "Job")
    name = job["metadata"]["name"]
    live_job = shared if shared is not None else live.get(child_key(job))
    shared_by = controller_name(shared) if shared is not None else None
    gate = weights_gate(
        md, config, name, live_job, report, datetime.datetime.now(datetime.UTC), shared_by=shared_by
    )
    gate = gate.holding_back(live)
    desired = without_job(desired, shared)
    wanted = {child_key(obj) for obj in desired}
    kept = tuple(k for k in live if k not in wanted)
    sync = await _apply(
        client, body, old, owner, desired, live, field_manager, kept, shared_download(md, desired)
    )
    if isinstance(sync, Outcome):
        return sync
    now, generation = utcnow(), md.metadata.generation
    waiting = f"{md.spec.model.name} is planned from the config.json in its weights: {gate.message}"
    new = old.model_copy(update={"observed_generation": generation})
    if not gate.kept:
        conditions = set_condition(
            new.conditions, "Planned", False, AWAITING_CHECKPOINT_CONFIG, waiting, now, generation
        )
        conditions = set_condition(conditions, "Ready", False, gate.reason, waiting, now, generation)
        new = new.model_copy(update={"conditions": conditions, "plan": None})
    new = gate.apply(new, now, generation)
    outcome = Outcome(
        phase=new.phase,
        applied=sync.applied,
        pruned=sync.pruned,
        applied_states=sync.states,
        pruned_keys=sync.pruned_keys,
        retry_after=POD_CREATION_GRACE_SECONDS if gate.state == "Downloading" else None,
    )
    announcements = (
        events.weights_announcements(old, new, gate.reason, gate.message) if gate.announces_failure else []
    )
    return await _record(client, body, old, new, announcements, outcome)


def _look_again_after(md: MimoDeployment, weights: WeightsGate | None, config: RenderConfig) -> float | None:
    """A download that has not started changes nothing the watch sees: look again, to say so. Nodes
    are not watched: a node-local cache looks for nodes that joined its pool this often."""
    if weights is not None and weights.state == "Downloading":
        return POD_CREATION_GRACE_SECONDS
    return config.node_recheck_seconds if node_local(md) else None


async def reconcile(
    client: KubeClient,
    body: dict[str, Any],
    config: RenderConfig,
    field_manager: str,
    cache: ChildCache,
    policy: AuthorPolicy,
) -> Outcome:
    old = _status_of(body)
    # Guard: a spec that cannot be parsed, is not allowed or cannot be planned changes no child.
    try:
        md = parse_mimo_deployment(body)
    except SpecInvalid as exc:
        return await _fail(client, body, old, "SpecInvalid", str(exc))
    refusals = policy.refusals(md, (config.vllm_image, config.rocm_vllm_image))
    if refusals:
        return await _fail(client, body, old, POLICY_REASON, "; ".join(refusals))
    # Read what exists (from the watch-fed cache) and how the weights download ended, if it did.
    owner = Owner(md.metadata.namespace, md.metadata.name, md.metadata.uid)
    live = await cache.children(client, owner.namespace, owner.name, child_kinds(config))
    fetch_job = render_fetch_job(md, config)
    report, checkpoint_config, shared = None, None, None
    if fetch_job is not None:
        job_name = fetch_job["metadata"]["name"]
        # The same weights on the same claim may already be downloading for another deployment.
        shared = await shared_job(client, md, owner, fetch_job, live)
        live_job = shared if shared is not None else live.get(child_key(fetch_job))
        report = await job_report(client, owner.namespace, job_name, live_job)
        checkpoint_config = reported_config(job_name, report, old.weights)
    plan = plan_for(md.spec, checkpoint_config)
    if isinstance(plan, PlanError) and plan.reason == AWAITING_CHECKPOINT_CONFIG:
        return await _fetch_before_planning(
            client, body, md, old, config, field_manager, owner, live, report, shared
        )
    if isinstance(plan, PlanError):
        return await _fail(client, body, old, plan.reason, plan.message)

    # Compute the desired children; no StatefulSet before the weights are complete (handlers/weights.py).
    digest = plan_hash(md, plan, config)
    desired = render_children(md, plan, config, digest)
    desired, weights = gate_children(md, config, desired, live, report, checkpoint_config, shared)
    if node_local(md):
        try:
            desired, weights = await node_local_children(client, md, plan, config, desired, live)
        except NodeAccessDenied as exc:
            message = (
                f"{exc}; a node-local cache (spec.model.cache.hostPath with fetch: job) needs the chart's "
                "policy.allowHostPath: true, which lets the operator list nodes and set its "
                f"{constants.NODE_COPY_LABEL_PREFIX} labels on them, and nothing else"
            )
            return await _fail(client, body, old, "NodeAccessDenied", message, REFUSAL_RECHECK_SECONDS)
    kept = weights.kept if weights is not None else ()
    sync = await _apply(
        client, body, old, owner, desired, live, field_manager, kept, shared_download(md, desired)
    )
    if isinstance(sync, Outcome):
        return sync

    # Status from what the server returned, announced before it is written.
    expected = sum(1 for obj in desired if obj["kind"] == "StatefulSet") + len(kept)
    # StatefulSets kept serving while new weights download are judged against their own plan: they
    # are not rolling yet (the WeightsReady and Progressing conditions say what they wait for).
    judged = digest
    if kept and sync.statefulsets:
        judged = sync.statefulsets[0]["metadata"].get("labels", {}).get(constants.LABEL_PLAN_HASH, digest)
    new = await _serving_status(
        client, md, plan, judged, sync.statefulsets, expected, sync.autoscaler, config, owner
    )
    if weights is not None:
        new = weights.apply(new, utcnow(), md.metadata.generation)
    outcome = Outcome(
        phase=new.phase,
        applied=sync.applied,
        pruned=sync.pruned,
        applied_states=sync.states,
        pruned_keys=sync.pruned_keys,
        gpus_planned=plan.gpus_per_replica * (new.replicas or 0),
        gpus_ready=plan.gpus_per_replica * (new.ready_replicas or 0),
        scaling_limited=any(x.type == "ScalingLimited" and x.status == "True" for x in new.conditions),
        replicas=new.replicas or 0,
        ready_replicas=new.ready_replicas or 0,
        startup_budget_seconds=startup_budget_seconds(md, plan, config),
        retry_after=_look_again_after(md, weights, config),
    )
    announcements = events.serving_announcements(old, new, plan.summary, POD_PROBLEM_REASONS)
    if weights is not None and weights.announces_failure:
        announcements += events.weights_announcements(old, new, weights.reason, weights.message)
    return await _record(client, body, old, new, announcements, outcome)
