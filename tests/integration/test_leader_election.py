"""Two operator replicas, one leader (kube/lease.py), against the sandbox's real API server.

What a user relies on: only the Lease holder reconciles and the standby writes nothing; a killed
leader is replaced once its lease has run out, a gracefully stopped one at once; and a leader cut off
from the API server stops writing before anyone may take its lease, then exits so that Kubernetes
restarts it as a standby. Hand-over times are read from the Lease object's own timestamps (written by
the replicas' clocks), never from how long the test waited.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mimo_operator.cli import EXIT_LEADERSHIP_LOST
from mimo_operator.kube.client import KubeClient
from mimo_operator.kube.lease import (
    JITTER_FACTOR,
    LEASE_DURATION_SECONDS,
    RETRY_PERIOD_SECONDS,
    LeaderElector,
)
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import NotYet, wait_for
from tests.integration.api_proxy import ApiProxy
from tests.integration.conftest import EXAMPLES, get_json, weights_pvc
from tests.integration.operator_process import OperatorProcess

pytestmark = pytest.mark.sandbox
LEASE = "mimo-operator"  # the default lease name
EXAMPLE = "mimo-fp8-h100"
# A standby looks at the lease every retry period, stretched by up to JITTER_FACTOR: it first sees
# the leader's last renewal up to one such interval late, and notices the expiry up to one interval
# late again. Plus five seconds for the requests and a busy event loop on a loaded 2-core CI machine:
# the bound is there to catch a standby that waits for a second lease period, not to time requests.
HANDOVER_BOUND = LEASE_DURATION_SECONDS + 2 * RETRY_PERIOD_SECONDS * (1 + JITTER_FACTOR) + 5


def _time(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _lease(sandbox: Sandbox, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = get_json(sandbox, "-n", namespace, "get", "lease", LEASE)["spec"]
    return spec


def _holder_is(sandbox: Sandbox, namespace: str, pod: str) -> Any:
    def check() -> Any:
        spec = _lease(sandbox, namespace)
        return spec if spec.get("holderIdentity", "").startswith(f"{pod}_") else NotYet(spec)

    return check


def _health(operator: OperatorProcess) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.liveness_port}/healthz", timeout=5) as r:
        return json.loads(r.read())


def _requests_by_verb(operator: OperatorProcess) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    for name, value in operator.metrics().items():
        if name.startswith("mimo_operator_api_requests_total{") and value:
            labels = dict(part.split("=", 1) for part in name[name.index("{") + 1 : -1].split(","))
            key = (labels["verb"].strip('"'), labels["resource"].strip('"'))
            counts[key] = counts.get(key, 0) + value
    return counts


def _replica(sandbox: Sandbox, namespace: str, tmp_path: Path, pod: str, **env: str) -> OperatorProcess:
    return OperatorProcess(
        sandbox, namespace, tmp_path, name=pod, args=("--leader-elect",), env={"POD_NAME": pod, **env}
    )


@pytest.fixture
def replicas(
    sandbox: Sandbox, mimo_crd: str, namespace: str, tmp_path: Path
) -> Iterator[list[OperatorProcess]]:
    """Operators the test starts (appended to the list); stopped afterwards, and the deployments'
    pods awaited, so the next test finds the simulated GPUs free."""
    started: list[OperatorProcess] = []
    try:
        yield started
    finally:
        survivor = next((op for op in started if op.proc and op.proc.poll() is None), None)
        sandbox.kubectl(
            "-n", namespace, "delete", "mimo", "--all", "--wait=true", "--timeout=60s", check=False
        )
        for op in started:
            op.kill()
        if survivor is not None:
            print(survivor.log_tail())
        wait_for(
            lambda: not get_json(sandbox, "-n", namespace, "get", "pods")["items"],
            timeout=90,
            description=f"pods of namespace {namespace} gone",
        )


def _leader_and_standby(
    sandbox: Sandbox, namespace: str, tmp_path: Path, replicas: list[OperatorProcess], **leader_env: str
) -> tuple[OperatorProcess, OperatorProcess]:
    """op-a started first and leading, then op-b standing by; the example Ready (reconciled by op-a)."""
    leader = _replica(sandbox, namespace, tmp_path, "op-a", **leader_env)
    replicas.append(leader.start())
    wait_for(lambda: leader.metrics().get("mimo_operator_leader") == 1, timeout=30, description="op-a leads")
    standby = _replica(sandbox, namespace, tmp_path, "op-b")
    replicas.append(standby.start())
    weights_pvc(sandbox, namespace)
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / f"{EXAMPLE}.yaml"))

    def ready() -> Any:
        obj = get_json(sandbox, "-n", namespace, "get", "mimo", EXAMPLE)
        status = obj.get("status", {})
        done = (
            status.get("phase") == "Ready"
            and status.get("observedGeneration") == obj["metadata"]["generation"]
        )
        return obj if done else NotYet(status.get("phase"))

    wait_for(ready, timeout=90, description=f"{EXAMPLE} Ready")
    return leader, standby


def test_only_the_leader_reconciles_and_the_standby_only_reads_the_lease(
    sandbox: Sandbox, namespace: str, tmp_path: Path, replicas: list[OperatorProcess]
) -> None:
    leader, standby = _leader_and_standby(sandbox, namespace, tmp_path, replicas)

    assert _lease(sandbox, namespace)["holderIdentity"].startswith("op-a_")
    assert leader.metrics()["mimo_operator_leader"] == 1 and standby.metrics()["mimo_operator_leader"] == 0
    assert leader.writes() > 0
    # The standby sent nothing but GETs of the lease: no write, no list, no read of any child.
    by_verb = _requests_by_verb(standby)
    assert set(by_verb) == {("get", "leases")}, by_verb
    assert standby.writes() == 0
    # Both are healthy, and /healthz says which is which (kopf reuses a probe's answer for 10 s).
    wait_for(
        lambda: _health(leader) == {"reconciler": "ok", "leadership": "leader"} or NotYet(_health(leader)),
        timeout=15,
        description="the leader's /healthz",
    )
    assert _health(standby) == {"reconciler": "ok", "leadership": "standby"}


def test_a_killed_leader_is_replaced_once_its_lease_runs_out(
    sandbox: Sandbox, namespace: str, tmp_path: Path, replicas: list[OperatorProcess]
) -> None:
    leader, standby = _leader_and_standby(sandbox, namespace, tmp_path, replicas)
    leader.kill(signal.SIGKILL)
    last = _lease(sandbox, namespace)  # op-a is dead: this is its final renewal
    assert last["holderIdentity"].startswith("op-a_")

    taken = wait_for(_holder_is(sandbox, namespace, "op-b"), timeout=60, description="op-b holds the lease")
    assert taken["leaseTransitions"] == last["leaseTransitions"] + 1
    waited = _time(taken["acquireTime"]) - _time(last["renewTime"])
    # Never before the lease ran out (that would be two leaders), and not much after.
    assert LEASE_DURATION_SECONDS <= waited <= HANDOVER_BOUND, waited
    wait_for(lambda: standby.metrics()["mimo_operator_leader"] == 1, timeout=10, description="op-b leads")

    # The new leader reconciles: a deleted child is recreated.
    service = get_json(sandbox, "-n", namespace, "get", "service", EXAMPLE)
    sandbox.kubectl("-n", namespace, "delete", "service", EXAMPLE)
    wait_for(
        lambda: (
            get_json(sandbox, "-n", namespace, "get", "service", EXAMPLE)["metadata"]["uid"]
            != service["metadata"]["uid"]
        ),
        timeout=30,
        description="the deleted Service recreated by op-b",
    )
    assert ("apply", "services") in _requests_by_verb(standby)


def test_a_gracefully_stopped_leader_hands_over_without_waiting_for_expiry(
    sandbox: Sandbox, namespace: str, tmp_path: Path, replicas: list[OperatorProcess]
) -> None:
    leader, _ = _leader_and_standby(sandbox, namespace, tmp_path, replicas)
    before = _lease(sandbox, namespace)
    leader.kill(signal.SIGTERM)
    assert leader.proc is not None and leader.proc.returncode == 0

    taken = wait_for(_holder_is(sandbox, namespace, "op-b"), timeout=30, description="op-b holds the lease")
    assert taken["leaseTransitions"] == before["leaseTransitions"] + 1
    # op-a renewed at `before` or later, so a standby waiting for expiry could not have taken the
    # lease before before.renewTime + leaseDuration: it was released.
    assert _time(taken["acquireTime"]) - _time(before["renewTime"]) < LEASE_DURATION_SECONDS
    assert "released the leader lease" in leader.log_tail(200)


def test_a_leader_cut_off_from_the_api_server_stops_writing_before_its_lease_can_be_taken(
    sandbox: Sandbox, namespace: str, tmp_path: Path, replicas: list[OperatorProcess]
) -> None:
    proxy = ApiProxy(sandbox).start()
    try:
        kubeconfig = proxy.kubeconfig(tmp_path / "via-proxy.kubeconfig")
        leader, _ = _leader_and_standby(sandbox, namespace, tmp_path, replicas, KUBECONFIG=str(kubeconfig))
        process = leader.proc
        assert process is not None
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{LEASE}"
        cut_at = proxy.cut()
        # It notices by itself, and exits so that a restart makes it a standby.
        wait_for(lambda: process.poll() is not None, timeout=60, description="op-a to exit by itself")
        assert process.returncode == EXIT_LEADERSHIP_LOST, leader.log_tail()
        taken = wait_for(
            _holder_is(sandbox, namespace, "op-b"), timeout=60, description="op-b holds the lease"
        )
        restored_at = proxy.restore()
    finally:
        proxy.stop()

    seen = proxy.requests()
    renewals = [
        r.json()["spec"]["renewTime"]
        for r in seen
        if r.forwarded and r.method == "PUT" and r.path == lease_path
    ]
    last_renewal = max(_time(stamp) for stamp in renewals)
    cut_off = [r for r in seen if r.at >= cut_at]
    # Nothing reached the API server after the cut; op-a kept trying to renew until it gave up.
    assert not [r for r in cut_off if r.forwarded]
    assert any(r.method == "PUT" and r.path == lease_path for r in cut_off)
    # Every write it attempted, renewals included, came before its lease could expire.
    writes = [r for r in cut_off if r.method not in ("GET", "HEAD")]
    assert all(r.at < last_renewal + LEASE_DURATION_SECONDS for r in writes), [
        (r.method, r.path, r.at - last_renewal) for r in writes
    ]
    # op-b waited out the whole lease, and op-a had exited (every connection closed) before op-b took it.
    assert _time(taken["acquireTime"]) >= last_renewal + LEASE_DURATION_SECONDS
    assert max(proxy.closed_at) < _time(taken["acquireTime"])
    assert not [r for r in seen if r.at >= restored_at]


# -- the elector alone, against the real API server, with clocks the test moves ----------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _admin_client(sandbox: Sandbox) -> KubeClient:
    assert sandbox.state_dir is not None
    pki = sandbox.state_dir / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    return KubeClient(sandbox.server, context, {})


def test_electors_respect_a_live_lease_take_an_expired_one_and_release_it(
    sandbox: Sandbox, namespace: str
) -> None:
    async def scenario() -> None:
        client = _admin_client(sandbox)
        clock_a, clock_b, clock_c = Clock(), Clock(), Clock()
        a = LeaderElector(lambda: client, namespace, "race", "a", clock=clock_a)
        b = LeaderElector(lambda: client, namespace, "race", "b", clock=clock_b)
        c = LeaderElector(lambda: client, namespace, "race", "c", clock=clock_c)
        try:
            assert await a.try_acquire_or_renew()  # creates the lease
            assert a.may_write() and a.record.transitions == 0
            assert not await b.try_acquire_or_renew()
            clock_b.now += 14.9
            assert not await b.try_acquire_or_renew()  # unchanged, but not for a whole lease duration
            clock_a.now += 2
            assert await a.try_acquire_or_renew()  # renewed: b's wait starts again when it sees it
            clock_b.now += 14.9
            assert not await b.try_acquire_or_renew()
            clock_b.now += 15
            assert await b.try_acquire_or_renew()  # expired by b's clock: taken over
            assert b.record.transitions == 1 and b.may_write()

            # a, cut off this whole time by its own clock, fenced itself at its renew deadline.
            clock_a.now += 10
            assert not a.may_write()
            assert not await a.try_acquire_or_renew()
            assert a.record.holder == "b"

            # b releases; a and c race for the free lease: one wins, the other gets 409 or sees it held.
            assert await b.release()
            assert not b.may_write()
            won = await asyncio.gather(a.try_acquire_or_renew(), c.try_acquire_or_renew())
            assert sorted(won) == [False, True]
            winner = a if won[0] else c
            assert winner.record.transitions == 2 and winner.may_write()
        finally:
            await client.close()

    asyncio.run(scenario())
