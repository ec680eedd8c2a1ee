"""Status from the plan and the observed children: phase, conditions and replica counts (pure).

`now` comes in as an argument, and a condition keeps its lastTransitionTime while its status stays
the same, so computing the status of an unchanged world gives an identical object: no write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mimo_operator.api import (
    AutoscalingStatus,
    MimoDeployment,
    MimoDeploymentStatus,
    PlanStatus,
    constants,
)
from mimo_operator.api.status import ColdStartStatus, Phase
from mimo_operator.planner import Plan
from mimo_operator.planner.coldstart import ColdStart
from mimo_operator.planner.report import cold_start_as_dict
from mimo_operator.render import names
from mimo_operator.render.conditions import set_condition
from mimo_operator.render.diagnosis import autoscaling_conditions


def cold_start_status(cold: ColdStart) -> ColdStartStatus:
    """The estimate under the names `mimo-operator plan` prints, which are the status field names."""
    return ColdStartStatus.model_validate(cold_start_as_dict(cold))


def plan_status(plan: Plan, digest: str, cold: ColdStart | None = None) -> PlanStatus:
    return PlanStatus(
        gpus_per_replica=plan.gpus_per_replica,
        gpus_per_pod=plan.gpus_per_pod,
        nodes_per_replica=plan.nodes_per_replica,
        tensor_parallel=plan.tensor_parallel,
        pipeline_parallel=plan.pipeline_parallel,
        data_parallel=plan.data_parallel,
        expert_parallel=plan.expert_parallel,
        mtp=plan.mtp,
        max_model_len=plan.max_model_len,
        weights_gi_b_per_gpu=plan.weights_gib_per_gpu,
        reserved_gi_b_per_gpu=plan.reserved_gib_per_gpu,
        kv_cache_gi_b_per_gpu=plan.kv_cache_gib_per_gpu,
        kv_cache_tokens=plan.kv_cache_tokens,
        max_concurrent_at_max_len=plan.max_concurrent_at_max_len,
        attention_backend=plan.attention_backend,
        attention_backend_flag=plan.attention_backend_flag,
        vllm_log_kv_cache_tokens=plan.vllm_log_kv_cache_tokens,
        vllm_log_max_concurrency=plan.vllm_log_max_concurrency,
        max_concurrent_prompts_at_max_len=plan.max_concurrent_prompts_at_max_len,
        validation=plan.validation,
        notes=list(plan.notes),
        summary=plan.summary,
        hash=digest,
        cold_start=cold_start_status(cold) if cold is not None else None,
    )


def failed_status(
    previous: MimoDeploymentStatus, generation: int | None, reason: str, message: str, now: str
) -> MimoDeploymentStatus:
    """The status of a spec that cannot be served: nothing was created or changed."""
    conditions = set_condition(previous.conditions, "Planned", False, reason, message, now, generation)
    conditions = set_condition(conditions, "Ready", False, reason, message, now, generation)
    return previous.model_copy(
        update={"observed_generation": generation, "phase": "Failed", "conditions": conditions}
    )


def _rolling(sts: dict[str, Any], digest: str) -> bool:
    status = sts.get("status") or {}
    spec_replicas = sts.get("spec", {}).get("replicas", 0)
    return (
        sts.get("metadata", {}).get("labels", {}).get(constants.LABEL_PLAN_HASH) != digest
        or status.get("observedGeneration", 0) < sts.get("metadata", {}).get("generation", 0)
        or status.get("updatedReplicas", 0) < spec_replicas
        or status.get("currentRevision") != status.get("updateRevision")
    )


def _ready_replicas(plan: Plan, statefulsets: Sequence[dict[str, Any]], replicas: int) -> int:
    if plan.nodes_per_replica == 1:
        ready: int = sum((sts.get("status") or {}).get("readyReplicas", 0) for sts in statefulsets)
        return min(replicas, ready)
    # A multi-node replica serves only when every pod of its group is ready.
    return sum(
        1
        for sts in statefulsets
        if (sts.get("status") or {}).get("readyReplicas", 0) >= plan.nodes_per_replica
    )


def compute_status(
    md: MimoDeployment,
    plan: Plan,
    digest: str,
    statefulsets: Sequence[dict[str, Any]],
    expected_statefulsets: int,
    now: str,
    autoscaler: dict[str, Any] | None = None,
    keda_available: bool = False,
    problems: Sequence[tuple[str, str]] = (),
    scaling: AutoscalingStatus | None = None,
    cold: ColdStart | None = None,
) -> MimoDeploymentStatus:
    gen = md.metadata.generation
    replicas = md.spec.effective_replicas()
    ready = _ready_replicas(plan, statefulsets, replicas)
    rolling = len(statefulsets) < expected_statefulsets or any(_rolling(sts, digest) for sts in statefulsets)
    # Degraded means "was serving fully and lost some of it"; until the first full readiness (or
    # while a rollout runs) pods that are not ready yet are simply still deploying.
    served_before = md.status.phase in ("Ready", "Degraded")
    phase: Phase
    if replicas == 0:
        phase = "Pending"
    elif ready >= replicas and not rolling:
        phase = "Ready"
    elif rolling or not served_before:
        phase = "Deploying"
    else:
        phase = "Degraded"
    prev = md.status.conditions
    conds = set_condition(prev, "Planned", True, "Planned", plan.summary, now, gen)
    ready_reason = "AllReplicasReady" if phase == "Ready" else "ReplicasNotReady"
    ready_message = f"{ready}/{replicas} replicas ready"
    if phase != "Ready" and problems:
        ready_reason = problems[0][0]
        shown = "; ".join(message for _, message in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        ready_message = f"{ready_message}: {shown}{more}"
    conds = set_condition(conds, "Ready", phase == "Ready", ready_reason, ready_message, now, gen)
    conds = set_condition(
        conds,
        "Progressing",
        rolling,
        "RollingOut" if rolling else "Complete",
        "pods are being created or updated" if rolling else "every pod runs the current plan",
        now,
        gen,
    )
    degraded = phase == "Degraded"
    conds = set_condition(
        conds,
        "Degraded",
        degraded,
        "ReplicasUnavailable" if degraded else "AsPlanned",
        f"{replicas - ready} of {replicas} replicas not ready" if degraded else "",
        now,
        gen,
    )
    pinned = md.spec.model.revision is not None
    conds = set_condition(
        conds,
        "ModelPinned",
        pinned,
        "RevisionPinned" if pinned else "Unpinned",
        f"serving revision {md.spec.model.revision}"
        if pinned
        else "spec.model.revision is not set: the weights can change without any change to this spec",
        now,
        gen,
    )
    conds = autoscaling_conditions(md, conds, autoscaler, keda_available, now)
    multi = plan.nodes_per_replica > 1
    return MimoDeploymentStatus(
        observed_generation=gen,
        phase=phase,
        conditions=conds,
        plan=plan_status(plan, digest, cold),
        replicas=replicas,
        ready_replicas=ready,
        ready=f"{ready}/{replicas}",
        selector=names.selector_string(names.leader_selector(md, multi)),
        endpoint=f"http://{names.api_service_name(md)}.{md.metadata.namespace}.svc:{constants.HTTP_PORT}/v1",
        autoscaling=scaling,
    )
