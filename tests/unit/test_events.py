"""Which transitions are announced, and the deterministic names that make announcing exactly once."""

from __future__ import annotations

from mimo_operator.api import Condition, MimoDeploymentStatus
from mimo_operator.handlers import events


def status(phase: str, ready: str, reason: str, since: str, message: str = "") -> MimoDeploymentStatus:
    return MimoDeploymentStatus(
        phase=phase,  # type: ignore[arg-type]
        ready="1/1",
        conditions=[
            Condition(type="Ready", status=ready, reason=reason, message=message, last_transition_time=since)  # type: ignore[arg-type]
        ],
    )


DEPLOYING = status("Deploying", "False", "ReplicasNotReady", "2026-01-01T00:00:00Z", "0/1 replicas ready")
READY = status("Ready", "True", "AllReplicasReady", "2026-01-01T00:01:00Z", "1/1 replicas ready")
NO_REASONS: frozenset[str] = frozenset()


def test_becoming_ready_is_announced_once_per_transition_under_one_name() -> None:
    [first] = events.serving_announcements(DEPLOYING, READY, "plan", NO_REASONS)
    assert (first.type, first.reason) == ("Normal", "Ready")
    # The same transition computed again (after a crash, or from a stale copy): the same name.
    [again] = events.serving_announcements(DEPLOYING, READY, "plan", NO_REASONS)
    assert first.name("m", "uid-1") == again.name("m", "uid-1")
    # Another object, or a later transition from a different state, gets another name.
    assert first.name("m", "uid-2") != first.name("m", "uid-1")
    later = status("Degraded", "False", "ReplicasNotReady", "2026-01-01T00:09:00Z", "0/1 replicas ready")
    [next_time] = events.serving_announcements(later, READY, "plan", NO_REASONS)
    assert next_time.name("m", "uid-1") != first.name("m", "uid-1")


def test_nothing_is_announced_when_nothing_changed() -> None:
    assert events.serving_announcements(READY, READY, "plan", NO_REASONS) == []


def test_names_are_valid_event_names() -> None:
    [announcement] = events.serving_announcements(DEPLOYING, READY, "plan", NO_REASONS)
    name = announcement.name("a" * 63, "uid")
    assert len(name) <= 253 and name.startswith("a" * 63 + ".")


def test_a_failure_is_announced_when_its_reason_changes() -> None:
    planned = MimoDeploymentStatus(
        conditions=[Condition(type="Planned", status="True", reason="Planned", last_transition_time="t0")]
    )
    failed = MimoDeploymentStatus(
        conditions=[
            Condition(
                type="Planned", status="False", reason="QuotaExceeded", message="m", last_transition_time="t1"
            )
        ]
    )
    [warning] = events.failure_announcements(planned, failed, "QuotaExceeded", "m")
    assert (warning.type, warning.reason) == ("Warning", "QuotaExceeded")
    assert events.failure_announcements(failed, failed, "QuotaExceeded", "m") == []
