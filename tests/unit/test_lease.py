"""The leader elector's decisions (kube/lease.py) and the API client's write gate, without a cluster.

The elector against a real API server, and whole operators handing over, are in
tests/integration/test_leader_election.py.
"""

from __future__ import annotations

import asyncio
import datetime

import pytest

from mimo_operator.handlers.settings import OperatorSettings
from mimo_operator.kube.client import ApiError, KubeClient, WriteFenced
from mimo_operator.kube.lease import (
    LEASE_DURATION_SECONDS,
    RENEW_DEADLINE_SECONDS,
    RETRY_PERIOD_SECONDS,
    LeaseRecord,
    claimed,
    held_by_another,
    micro_time,
    released,
    validate_timings,
)

NOW = datetime.datetime(2026, 12, 2, 15, 0, 0, 123456, tzinfo=datetime.UTC)
EARLIER = "2026-12-02T14:00:00.000000Z"
HELD_BY_B = LeaseRecord("b_1", 15, EARLIER, EARLIER, 4)


def test_defaults_are_client_gos_and_pass_its_checks() -> None:
    assert (LEASE_DURATION_SECONDS, RENEW_DEADLINE_SECONDS, RETRY_PERIOD_SECONDS) == (15.0, 10.0, 2.0)
    settings = OperatorSettings()
    assert settings.leader_elect is False
    assert settings.lease_duration_seconds > settings.renew_deadline_seconds


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "message"),
    [
        (10, 10, 2, "lease duration must be longer than the renew deadline"),
        (15, 2.4, 2, "renew deadline must be longer than 1.2 x the retry period"),
    ],
    ids=["leader-could-outlive-its-lease", "no-second-try-before-the-deadline"],
)
def test_timings_that_would_let_two_leaders_overlap_are_refused(
    lease: float, renew: float, retry: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_timings(lease, renew, retry)
    with pytest.raises(ValueError, match=message):
        OperatorSettings(
            lease_duration_seconds=lease, renew_deadline_seconds=renew, retry_period_seconds=retry
        )


def test_a_lease_held_by_another_is_respected_until_unchanged_for_the_lease_duration() -> None:
    assert held_by_another(HELD_BY_B, "a_1", unchanged_for=0.0, lease_duration=15)
    assert held_by_another(HELD_BY_B, "a_1", unchanged_for=14.9, lease_duration=15)
    assert not held_by_another(HELD_BY_B, "a_1", unchanged_for=15.0, lease_duration=15)


def test_a_released_or_own_lease_is_free_at_once() -> None:
    assert not held_by_another(released(HELD_BY_B, NOW), "a_1", unchanged_for=0.0, lease_duration=15)
    assert not held_by_another(HELD_BY_B, "b_1", unchanged_for=0.0, lease_duration=15)


def test_taking_over_starts_a_term_and_counts_a_transition() -> None:
    taken = claimed(HELD_BY_B, "a_1", NOW, 15)
    stamp = "2026-12-02T15:00:00.123456Z"
    assert taken == LeaseRecord("a_1", 15, stamp, stamp, 5)


def test_renewing_keeps_the_term_and_the_transition_count() -> None:
    renewed = claimed(HELD_BY_B, "b_1", NOW, 15)
    assert renewed == LeaseRecord("b_1", 15, EARLIER, "2026-12-02T15:00:00.123456Z", 4)


def test_releasing_empties_the_holder_and_keeps_the_count() -> None:
    free = released(HELD_BY_B, NOW)
    assert free.holder == "" and free.transitions == 4 and free.duration_seconds == 1
    assert claimed(free, "a_1", NOW, 15).transitions == 5


def test_lease_spec_round_trips_and_uses_microtime() -> None:
    assert micro_time(NOW.astimezone(datetime.timezone(datetime.timedelta(hours=8)))) == (
        "2026-12-02T15:00:00.123456Z"
    )
    assert LeaseRecord.of({"spec": HELD_BY_B.spec()}) == HELD_BY_B
    assert LeaseRecord.of({"metadata": {"name": "x"}}) == LeaseRecord()


# An address where nothing listens: a request that is sent fails with a connection error (ApiError
# status 0); a request the gate refuses never gets that far.
NOWHERE = "http://127.0.0.1:9"


def test_a_closed_write_gate_refuses_every_write_before_it_is_sent() -> None:
    async def scenario() -> None:
        client = KubeClient(NOWHERE, False, {})
        client.write_gate = lambda: False
        try:
            for write in (
                client.create("/api/v1/namespaces/x/events", {}),
                client.update("/api/v1/namespaces/x/services/s", {}),
                client.merge_patch("/apis/apps/v1/namespaces/x/statefulsets/s", {}),
                client.apply("/apis/apps/v1/namespaces/x/statefulsets/s", {}, "mgr"),
                client.apply("/apis/apps/v1/namespaces/x/statefulsets/s", {}, "mgr", dry_run=True),
                client.delete("/apis/apps/v1/namespaces/x/statefulsets/s"),
            ):
                with pytest.raises(WriteFenced):
                    await write
            assert client.requests.total() == 0
            # Reads and the lease's own writes are not fenced: they are sent (and fail here).
            with pytest.raises(ApiError) as read:
                await client.request("get", "GET", "/api/v1/namespaces/x/services/s")
            assert read.value.status == 0
            with pytest.raises(ApiError):
                await client.update("/apis/coordination.k8s.io/v1/namespaces/x/leases/l", {}, fenced=False)
            assert client.writes() == 5  # the unfenced PUT, tried five times
        finally:
            await client.close()

    asyncio.run(scenario())


def test_the_gate_is_asked_again_before_every_retry() -> None:
    async def scenario() -> None:
        client = KubeClient(NOWHERE, False, {})
        answers = iter([True, True, False])
        client.write_gate = lambda: next(answers)
        try:
            with pytest.raises(WriteFenced):
                await client.create("/api/v1/namespaces/x/events", {})
            assert client.writes() == 2  # two attempts sent, the third refused
        finally:
            await client.close()

    asyncio.run(scenario())
