"""Leader election on a `coordination.k8s.io/v1` Lease, so two operator replicas can run and one writes.

The rules are client-go's (k8s.io/client-go/tools/leaderelection/leaderelection.go, the package every
Kubernetes controller uses, kube-controller-manager and controller-runtime included):
- A candidate takes the lease only when it is free (empty holder) or expired. Expiry is judged by the
  candidate's own clock: a lease counts as expired once the candidate has seen no change to it for
  leaseDuration. Timestamps in the object are not compared across machines, so clock skew between
  replicas does not matter (only a difference in clock *rate* would).
- Every write is a PUT carrying the resourceVersion that was read: of two candidates racing for an
  expired lease, one gets 409 Conflict and stays a standby.
- The leader renews every retry period and gives up when no renewal has succeeded for the renew
  deadline. Taking over a lease increments leaseTransitions; renewing keeps acquireTime.
- Stopping gracefully releases the lease (empty holder), so a standby takes over at its next retry
  instead of waiting for expiry (client-go's ReleaseOnCancel).

What client-go leaves to the caller is fencing: its package documentation says it "does not guarantee
that only one client is acting as a leader". Here the leader fences itself in time: `may_write()`
turns false the moment the renew deadline has passed since the last successful renewal was *sent*,
the API client asks it before every write (kube/client.py `write_gate`), and the process then exits
non-zero so Kubernetes restarts it as a standby (client-go's callers exit on OnStoppedLeading too).
A standby cannot take over before it has seen the lease unchanged for leaseDuration, which begins no
earlier than that renewal reached the API server; renewDeadline < leaseDuration leaves the difference
(5 s with the defaults) as margin. A standby only GETs the lease while it waits.

Why not kopf's peering: peering is a pause switch, not a lock. kopf's own source says so
(kopf/_core/engines/peering.py, module docstring: "There are **NO** per-object locks between the
operators, so only one operator should be functional"): operators post keep-alives into a KopfPeering
object, and one that sees a live peer of higher priority pauses its watch streams, while equal
priorities make every replica pause ("Pausing all operators, including self"), so two identical
replicas would both stop. A paused state is only entered when the peering object's change is
*observed*: an operator cut off from the API server never learns it should stop, and nothing keeps it
from writing once the connection returns. It also needs extra cluster-wide CRDs, and it pauses kopf's
handlers, not this operator's own reconcile workers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import math
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from mimo_operator.api import constants
from mimo_operator.kube.client import ApiError, KubeClient

logger = logging.getLogger(__name__)

# client-go's defaults for core components (LeaderElectionConfig docs in
# k8s.io/client-go/tools/leaderelection/leaderelection.go: "Core clients default this value to 15
# seconds / 10 seconds / 2 seconds"; the same values are
# k8s.io/component-base/config/v1alpha1/defaults.go RecommendedDefaultLeaderElectionConfiguration).
LEASE_DURATION_SECONDS = 15.0
RENEW_DEADLINE_SECONDS = 10.0
RETRY_PERIOD_SECONDS = 2.0
# client-go's JitterFactor: a candidate retries after retryPeriod * (1 + rand * 1.2), so standbys
# started together do not all ask at the same instant.
JITTER_FACTOR = 1.2


class LeadershipLost(Exception):
    """The leader could not renew its lease within the renew deadline, or saw another holder."""


def validate_timings(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """client-go's NewLeaderElector checks: the leader must give up before a standby may take over,
    and must get more than one retry within its deadline."""
    if not lease_duration > renew_deadline:
        raise ValueError("the lease duration must be longer than the renew deadline")
    if not renew_deadline > JITTER_FACTOR * retry_period:
        raise ValueError(f"the renew deadline must be longer than {JITTER_FACTOR} x the retry period")
    if retry_period <= 0:
        raise ValueError("the retry period must be positive")


def default_identity() -> str:
    """The pod's name (or the host's) plus a random suffix: a restarted pod with the same name is a
    new candidate, never mistaken for the holder it replaced (controller-runtime does the same)."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4()}"


def micro_time(moment: datetime.datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, UTC."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclasses.dataclass(frozen=True)
class LeaseRecord:
    """The election state a Lease's spec holds."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def of(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


def held_by_another(record: LeaseRecord, identity: str, unchanged_for: float, lease_duration: float) -> bool:
    """True while someone else holds the lease and it has not (by our clock) expired."""
    return bool(record.holder) and record.holder != identity and unchanged_for < lease_duration


def claimed(record: LeaseRecord, identity: str, now: datetime.datetime, lease_duration: float) -> LeaseRecord:
    """The record after `identity` writes it: a renewal keeps acquireTime and the transition count,
    a takeover (of a free, expired or released lease) starts a new term and counts a transition."""
    stamp = micro_time(now)
    duration = math.ceil(lease_duration)
    if record.holder == identity:
        return dataclasses.replace(record, duration_seconds=duration, renew_time=stamp)
    return LeaseRecord(identity, duration, stamp, stamp, record.transitions + 1)


def released(record: LeaseRecord, now: datetime.datetime) -> LeaseRecord:
    """What a leader writes when it stops gracefully (client-go's release()): no holder, so the
    next candidate takes it at once."""
    stamp = micro_time(now)
    return LeaseRecord("", 1, stamp, stamp, record.transitions)


class LeaderElector:
    """One candidate for one Lease. `acquire()` returns once it leads; `hold()` renews until it
    cannot and then raises LeadershipLost; `release()` gives the lease up after work has stopped.

    `client` returns the API client to use (the operator's, which follows credential rotation);
    `clock` and `now` are the monotonic clock and the wall clock (tests may pass their own).
    """

    def __init__(
        self,
        client: Callable[[], KubeClient],
        namespace: str,
        name: str,
        identity: str | None = None,
        *,
        lease_duration: float = LEASE_DURATION_SECONDS,
        renew_deadline: float = RENEW_DEADLINE_SECONDS,
        retry_period: float = RETRY_PERIOD_SECONDS,
        on_leading: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime.datetime] = _utc_now,
    ) -> None:
        validate_timings(lease_duration, renew_deadline, retry_period)
        self._client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._on_leading = on_leading
        self._clock = clock
        self._now = now
        self._lease: dict[str, Any] | None = None  # the object as last read or written
        self.record = LeaseRecord()
        self._observed_at = -math.inf  # when (our clock) the record last changed as we saw it
        self._renewed_at: float | None = None  # when the last successful write of ours was sent

    @property
    def collection(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    @property
    def path(self) -> str:
        return f"{self.collection}/{self.name}"

    def may_write(self) -> bool:
        """The fence: true only while this candidate holds the lease and its last renewal was sent
        less than the renew deadline ago. Evaluated on the clock at every call, so it closes on time
        even if the renewal loop is late."""
        return (
            self.record.holder == self.identity
            and self._renewed_at is not None
            and self._clock() - self._renewed_at < self.renew_deadline
        )

    def role(self) -> str:
        return "leader" if self.may_write() else "standby"

    # -- one attempt -------------------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew; True when this candidate now holds the lease."""
        client = self._client()
        sent_at = self._clock()  # before any request: the fence counts from the earliest moment
        if self.may_write() and self._lease is not None:
            # The leader's fast path: renew with the version it wrote last, no read first.
            try:
                written = await client.update(self.path, self._with(self._lease, self._claim()), fenced=False)
            except ApiError as exc:
                logger.info("renewing lease %s optimistically failed (%s); reading it", self.path, exc)
            else:
                self._written(written, sent_at)
                return True
        try:
            current = await client.get(self.path)
        except ApiError as exc:
            logger.warning("cannot read lease %s: %s", self.path, exc)
            return False
        if current is None:
            return await self._create(client, sent_at)
        self._observe(current)
        if held_by_another(
            self.record, self.identity, self._clock() - self._observed_at, self.lease_duration
        ):
            return False
        try:
            written = await client.update(self.path, self._with(current, self._claim()), fenced=False)
        except ApiError as exc:
            # 409: another candidate wrote first; anything else: try again next round.
            logger.info("taking lease %s failed: %s", self.path, exc)
            return False
        self._written(written, sent_at)
        return True

    async def _create(self, client: KubeClient, sent_at: float) -> bool:
        stamp = micro_time(self._now())
        record = LeaseRecord(self.identity, math.ceil(self.lease_duration), stamp, stamp, 0)
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {constants.LABEL_MANAGED_BY: constants.MANAGED_BY},
            },
            "spec": record.spec(),
        }
        try:
            written = await client.create(self.collection, lease, fenced=False)
        except ApiError as exc:
            logger.info("creating lease %s failed: %s", self.path, exc)  # 409: another was first
            return False
        self._written(written, sent_at)
        return True

    def _claim(self) -> LeaseRecord:
        return claimed(self.record, self.identity, self._now(), self.lease_duration)

    @staticmethod
    def _with(lease: dict[str, Any], record: LeaseRecord) -> dict[str, Any]:
        # metadata (with resourceVersion) as read: the PUT fails with 409 if anyone wrote since.
        return {**lease, "spec": {**(lease.get("spec") or {}), **record.spec()}}

    def _observe(self, lease: dict[str, Any]) -> None:
        record = LeaseRecord.of(lease)
        if record != self.record:
            self.record = record
            self._observed_at = self._clock()
        self._lease = lease

    def _written(self, lease: dict[str, Any], sent_at: float) -> None:
        was_leading = self._renewed_at is not None
        self._lease = lease
        self.record = LeaseRecord.of(lease)
        self._observed_at = self._clock()
        self._renewed_at = sent_at
        if not was_leading:
            logger.info(
                "became the leader (%s, lease %s/%s, transitions %d)",
                self.identity,
                self.namespace,
                self.name,
                self.record.transitions,
            )
            if self._on_leading:
                self._on_leading(True)

    async def _attempt(self, timeout: float) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout)
        except TimeoutError:
            logger.warning("lease %s: no answer from the API server within %.1fs", self.path, timeout)
            return False

    # -- the loops ---------------------------------------------------------------------------------

    async def acquire(self) -> None:
        """Return once this candidate leads; until then only GET the lease, every retry period
        (with client-go's jitter), and write only to take a free or expired lease."""
        logger.info("waiting for the leader lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not await self._attempt(self.renew_deadline):
            await asyncio.sleep(self.retry_period * (1 + random.random() * JITTER_FACTOR))

    async def hold(self) -> None:
        """Renew every retry period; raise LeadershipLost once the fence has closed (renew deadline
        passed without a renewal, or another holder seen). Never returns otherwise."""
        while True:
            await asyncio.sleep(self.retry_period)
            while True:
                if not self.may_write():
                    self._lost()
                remaining = self._remaining()
                if await self._attempt(remaining):
                    break
                await asyncio.sleep(min(self.retry_period, self._remaining()))

    def _remaining(self) -> float:
        if self._renewed_at is None:
            return 0.0
        return max(0.0, self._renewed_at + self.renew_deadline - self._clock())

    def _lost(self) -> None:
        holder = self.record.holder
        if self._on_leading:
            self._on_leading(False)
        self._renewed_at = None
        if holder and holder != self.identity:
            raise LeadershipLost(f"lease {self.namespace}/{self.name} is now held by {holder}")
        raise LeadershipLost(
            f"lease {self.namespace}/{self.name} not renewed within {self.renew_deadline:g}s; "
            "stopped writing before it can expire"
        )

    async def release(self) -> bool:
        """Give the lease up (empty holder) if this candidate still surely holds it. Call only after
        every writer has stopped: a standby may start writing at once."""
        if not self.may_write() or self._lease is None:
            return False
        client = self._client()
        lease = self._with(self._lease, released(self.record, self._now()))
        try:
            written = await asyncio.wait_for(client.update(self.path, lease, fenced=False), self._remaining())
        except (ApiError, TimeoutError) as exc:
            logger.warning("releasing lease %s failed (it will expire instead): %s", self.path, exc)
            return False
        self._lease = written
        self.record = LeaseRecord.of(written)
        self._renewed_at = None
        if self._on_leading:
            self._on_leading(False)
        logger.info("released the leader lease %s/%s", self.namespace, self.name)
        return True
