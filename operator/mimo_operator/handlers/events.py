"""Events a person reads in `kubectl describe mimo`: one per condition transition, exactly once.

Exactly once across crashes takes two things. The event is posted *before* the status that records
the transition is written, so a process killed between the two has not lost it (the restarted operator
still sees the old status and announces again). And its name is derived from the transition itself
(the deployment's UID, the condition as it was, and the condition it becomes), so announcing the same
transition twice creates nothing the second time: the API server answers 409 AlreadyExists.

A transition is identified by the condition it leaves (status, reason, message and lastTransitionTime
as stored) and the one it enters (status, reason, message). Re-entering the same state later leaves a
different condition (a newer lastTransitionTime), so it is announced again.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import socket
from dataclasses import dataclass
from typing import Any

from mimo_operator.api import Condition, MimoDeploymentStatus, constants
from mimo_operator.kube.client import ApiError, KubeClient
from mimo_operator.kube.resources import KINDS

HOSTNAME = socket.gethostname()
# Conditions whose Warning-worthy state is "False", unless a reason says it is only waiting.
_WARN_WHEN = {"Autoscaling": "False", "ScalingLimited": "True"}


@dataclass(frozen=True)
class Announcement:
    """One event to post: what a person is told, and the transition it announces."""

    type: str  # Normal or Warning
    reason: str
    message: str
    condition: str  # the condition type whose transition this is
    before: Condition | None
    after: Condition

    def name(self, deployment: str, uid: str) -> str:
        """Deterministic: the same transition of the same object always gets the same name."""
        identity = json.dumps(
            [
                uid,
                self.condition,
                self.reason,
                _fingerprint(self.before),
                [self.after.status, self.after.reason, self.after.message],
            ]
        )
        return f"{deployment}.{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


def _fingerprint(cond: Condition | None) -> list[str] | None:
    if cond is None:
        return None
    return [cond.status, cond.reason, cond.message, cond.last_transition_time]


def _condition(status: MimoDeploymentStatus, type_: str) -> Condition | None:
    return next((x for x in status.conditions if x.type == type_), None)


def changed(old: MimoDeploymentStatus, new: MimoDeploymentStatus, type_: str) -> bool:
    """A condition's status, reason or message changed: worth one event (resyncs repeat nothing)."""
    before, after = _condition(old, type_), _condition(new, type_)
    if after is None:
        return False
    return before is None or (before.status, before.reason, before.message) != (
        after.status,
        after.reason,
        after.message,
    )


def _announce(
    old: MimoDeploymentStatus, new: MimoDeploymentStatus, type_: str, kind: str, reason: str, message: str
) -> Announcement:
    after = _condition(new, type_)
    assert after is not None  # callers check changed() first
    return Announcement(kind, reason, message, type_, _condition(old, type_), after)


def failure_announcements(
    old: MimoDeploymentStatus, new: MimoDeploymentStatus, reason: str, message: str
) -> list[Announcement]:
    """A spec that cannot be served (or a child the API server refuses): one Warning per new reason."""
    if not changed(old, new, "Planned"):
        return []
    return [_announce(old, new, "Planned", "Warning", reason, message)]


def weights_announcements(
    old: MimoDeploymentStatus, new: MimoDeploymentStatus, reason: str, message: str
) -> list[Announcement]:
    """The weights download failed (token, revision, disk, checksum, stall): one Warning per cause."""
    if not changed(old, new, "WeightsReady"):
        return []
    return [_announce(old, new, "WeightsReady", "Warning", reason, message)]


def serving_announcements(
    old: MimoDeploymentStatus,
    new: MimoDeploymentStatus,
    summary: str,
    problem_reasons: frozenset[str],
) -> list[Announcement]:
    """Ready reached; planned again after a failure; pods stuck for a reason a person must fix;
    the autoscaler unable to work or held at its maximum."""
    announcements: list[Announcement] = []
    if new.phase == "Ready" and changed(old, new, "Ready"):
        ready = f"{new.ready} replicas ready: {summary}"
        announcements.append(_announce(old, new, "Ready", "Normal", "Ready", ready))
    if old.phase == "Failed" and changed(old, new, "Planned"):
        announcements.append(_announce(old, new, "Planned", "Normal", "Planned", summary))
    ready_cond = _condition(new, "Ready")
    if ready_cond and ready_cond.reason in problem_reasons and changed(old, new, "Ready"):
        announcements.append(_announce(old, new, "Ready", "Warning", ready_cond.reason, ready_cond.message))
    for type_, warn_when in _WARN_WHEN.items():
        cond = _condition(new, type_)
        if (
            cond
            and cond.status == warn_when
            and cond.reason != "AutoscalerPending"
            and changed(old, new, type_)
        ):
            announcements.append(_announce(old, new, type_, "Warning", cond.reason, cond.message))
    return announcements


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def post(client: KubeClient, body: dict[str, Any], announcement: Announcement) -> bool:
    """Create the event; False when this very transition was announced before (409)."""
    meta = body["metadata"]
    now = _now()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": announcement.name(meta["name"], meta.get("uid", "")),
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid", ""),
        },
        "type": announcement.type,
        "reason": announcement.reason,
        "message": announcement.message[:1024],
        "source": {"component": "mimo-operator"},
        "reportingComponent": "mimo-operator",
        "reportingInstance": HOSTNAME,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await client.create(KINDS[("v1", "Event")].collection(meta["namespace"]), event)
    except ApiError as exc:
        if exc.status == 409 and exc.reason == "AlreadyExists":
            return False
        raise
    return True
