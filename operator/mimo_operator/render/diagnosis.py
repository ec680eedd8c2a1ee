"""What the observed pods and autoscaler say, raised to the MimoDeployment (pure): the pod problems
`kubectl describe` would show, and whether the autoscaler works or is held at its maximum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mimo_operator.api import Condition, MimoDeployment
from mimo_operator.render.conditions import set_condition

# Container states that will not resolve by waiting: the user has to act (a Secret, an image, a crash).
STUCK_CONTAINER_REASONS = frozenset(
    {
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)


def pod_problems(
    pods: Sequence[dict[str, Any]], statefulsets: Sequence[dict[str, Any]] = ()
) -> list[tuple[str, str]]:
    """(reason, "pod: message") for pods the scheduler cannot place or whose container cannot start:
    what `kubectl describe pod` would tell, raised to the MimoDeployment so nobody has to dig.
    A StatefulSet that has created none of its pods (admission refused them) counts too."""
    problems: list[tuple[str, str]] = []
    for sts in statefulsets:
        meta, status = sts.get("metadata", {}), sts.get("status") or {}
        wanted = sts.get("spec", {}).get("replicas", 0)
        processed = status.get("observedGeneration", 0) >= meta.get("generation", 1)
        if wanted and processed and not status.get("replicas") and not pods:
            problems.append(
                (
                    "NoPodsCreated",
                    f"StatefulSet {meta.get('name')} has created none of its {wanted} pods: the "
                    "namespace may refuse them (Pod Security admission: vLLM pods run as root and "
                    "need the baseline level) or a quota is used up; "
                    f"kubectl describe statefulset {meta.get('name')} shows why",
                )
            )
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", ""))):
        name = pod.get("metadata", {}).get("name", "?")
        status = pod.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason"):
                problems.append((str(cond["reason"]), f"{name}: {cond.get('message', '')}".strip()))
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK_CONTAINER_REASONS:
                problems.append(
                    (str(waiting["reason"]), f"{name}: {waiting.get('message', waiting['reason'])}")
                )
    return problems


AUTOSCALING_CONDITIONS = ("Autoscaling", "ScalingLimited")


def _hpa_condition(hpa: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        (
            cond
            for cond in ((hpa or {}).get("status") or {}).get("conditions") or []
            if cond.get("type") == type_
        ),
        {},
    )
    return found


def autoscaling_conditions(
    md: MimoDeployment,
    conditions: list[Condition],
    hpa: dict[str, Any] | None,
    keda_available: bool,
    now: str,
) -> list[Condition]:
    """What the autoscaler is doing, as the operator sees it: whether it works (metrics found, KEDA
    present) and whether it is held at maxReplicas while it wants more (the cue to add capacity)."""
    auto = md.spec.autoscaling
    if auto is None:
        return [cond for cond in conditions if cond.type not in AUTOSCALING_CONDITIONS]
    gen = md.metadata.generation
    if auto.engine == "keda":
        if keda_available:
            return set_condition(
                conditions,
                "Autoscaling",
                True,
                "ScaledObjectCreated",
                "KEDA scales this deployment through its ScaledObject",
                now,
                gen,
            )
        return set_condition(
            conditions,
            "Autoscaling",
            False,
            "KedaMissing",
            "spec.autoscaling.engine is keda but KEDA's ScaledObject CRD (keda.sh/v1alpha1) "
            "is not installed: install KEDA or set engine: hpa",
            now,
            gen,
        )
    active = _hpa_condition(hpa, "ScalingActive")
    if hpa is None or not active:
        conditions = set_condition(
            conditions,
            "Autoscaling",
            False,
            "AutoscalerPending",
            "waiting for the HorizontalPodAutoscaler to report",
            now,
            gen,
        )
    elif active.get("status") != "True":
        conditions = set_condition(
            conditions,
            "Autoscaling",
            False,
            active.get("reason") or "ScalingInactive",
            f"{active.get('message', '')} "
            "(are vLLM's metrics served through the Prometheus Adapter? see README)",
            now,
            gen,
        )
    else:
        conditions = set_condition(
            conditions, "Autoscaling", True, "Active", active.get("message", ""), now, gen
        )
    limited = _hpa_condition(hpa, "ScalingLimited")
    at_max = limited.get("status") == "True" and limited.get("reason") == "TooManyReplicas"
    return set_condition(
        conditions,
        "ScalingLimited",
        at_max,
        "AtMaxReplicas" if at_max else "WithinBounds",
        f"held at maxReplicas {auto.max_replicas} while {auto.metric} is above its target {auto.target}: "
        "raise spec.autoscaling.maxReplicas or add GPU nodes"
        if at_max
        else "",
        now,
        gen,
    )
