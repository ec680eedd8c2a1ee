"""The running operator: kopf's registry (login, the MimoDeployment watch, liveness), leader election,
and `run_operator`, which ties them to the Controller until a signal stops kopf.

kopf is used for what it is best at through async handlers that store nothing on the resource and run
on the event loop that owns the Controller's queue (kopf runs plain functions in a thread pool).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import kopf

from mimo_operator.api import constants
from mimo_operator.handlers.controller import Controller
from mimo_operator.handlers.metrics import OperatorMetrics
from mimo_operator.handlers.settings import OperatorSettings
from mimo_operator.kube.client import KubeClient
from mimo_operator.kube.lease import LeaderElector

logger = logging.getLogger("mimo_operator")


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf's bookkeeping, if any handler ever needs it, goes to annotations, never to status.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=constants.GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=constants.GROUP)
        settings.posting.enabled = False  # events are posted by reconcile, once per transition
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.reconnect_backoff = 1.0
        # Watching listed namespaces needs no cluster-wide reads: without this kopf spends a minute
        # retrying to list namespaces and CRDs that namespaced RBAC (rightly) does not grant.
        settings.scanning.disabled = not controller.settings.all_namespaces

    @kopf.on.login(registry=registry)
    async def login(**kwargs: Any) -> Any:
        def fresh() -> Any:
            return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

        info = fresh()
        if info is not None:
            # `fresh` is how our client logs in again after a 401 (a rotated token); kopf calls this
            # handler again after its own 401, and connect() passes the new credentials on.
            controller.connect(info, fresh)
        return info

    # Async, so it runs on the event loop that owns the queue (kopf runs plain functions in threads).
    @kopf.on.event(constants.GROUP, constants.VERSION, constants.PLURAL, registry=registry)
    async def on_mimo(event: kopf.RawEvent, **_: Any) -> None:
        controller.observe(event.get("type"), cast(dict[str, Any], event["object"]))

    @kopf.on.probe(id="reconciler", registry=registry)
    async def probe(**_: Any) -> str:
        if not controller.healthy():
            raise kopf.PermanentError("not connected, or every reconcile has failed for too long")
        return "ok"

    return registry


async def run_operator(
    settings: OperatorSettings,
    controller: Controller | None = None,
    stop_flag: asyncio.Event | None = None,
) -> None:
    """kopf's watches plus the reconcile workers, until a signal (or `stop_flag`) stops kopf.

    With `settings.leader_elect` the workers start only once this replica holds the Lease
    (kube/lease.py); until then it watches and waits, writing nothing. Losing the lease stops the
    workers and raises LeadershipLost, so the process exits non-zero and Kubernetes restarts it as
    a standby. A graceful stop releases the lease after the workers have stopped.
    """
    metrics: OperatorMetrics | None = None
    if controller is None:
        metrics = OperatorMetrics()
        controller = Controller(
            settings, metrics.on_outcome, metrics.on_request, metrics.forget, metrics.on_error
        )
        if settings.metrics_port:
            metrics.serve(settings.metrics_port)
    registry = build_registry(controller)
    liveness = f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
    if settings.leader_elect:
        if not settings.lease_namespace:
            raise ValueError("leader election needs the lease's namespace (lease_namespace)")
        running = controller
        elector = LeaderElector(
            lambda: _connected_client(running),
            settings.lease_namespace,
            settings.lease_name,
            lease_duration=settings.lease_duration_seconds,
            renew_deadline=settings.renew_deadline_seconds,
            retry_period=settings.retry_period_seconds,
            on_leading=metrics.on_leading if metrics else None,
        )

        work = _LeaderWork(controller, elector)

        # A standby waiting for the lease is healthy; /healthz says which role this replica has.
        @kopf.on.probe(id="leadership", registry=registry)
        def leadership(**_: Any) -> str:
            return elector.role()

        # On SIGTERM kopf stops its watches, runs cleanup handlers, then cancels every task left:
        # stepping down here releases the lease before that.
        @kopf.on.cleanup(registry=registry)
        async def step_down(**_: Any) -> None:
            await work.step_down()

        worker = asyncio.create_task(work.run())
    else:
        if metrics:
            metrics.on_leading(True)
        worker = asyncio.create_task(controller.run())
    watching = asyncio.create_task(
        kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=settings.all_namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
        )
    )
    try:
        done, _ = await asyncio.wait({worker, watching}, return_when=asyncio.FIRST_COMPLETED)
        if watching not in done and not worker.cancelled() and worker.exception() is None:
            await watching  # the workers stepped down because kopf is stopping: let it finish
    finally:
        for task in (worker, watching):
            task.cancel()
        results = await asyncio.gather(worker, watching, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result  # LeadershipLost among them: the process must exit non-zero


def _connected_client(controller: Controller) -> KubeClient:
    if controller.client is None:
        raise RuntimeError("no API client before kopf has logged in")
    return controller.client


class _LeaderWork:
    """The reconcile workers of a replica that must hold the Lease first (`run_operator` with
    leader election): wait for the lease, run the controller while renewing it, and step down."""

    def __init__(self, controller: Controller, elector: LeaderElector) -> None:
        self.controller = controller
        self.elector = elector
        self._acquiring: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stepping: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Returns when stepped down; raises LeadershipLost when the lease could not be kept."""
        controller = self.controller
        await controller.connected.wait()
        if self._stepping is not None:
            return  # stopped before kopf had even logged in
        # Every write of this replica, reconcile's and events alike, is refused once the lease is
        # not surely ours; only the elector's own lease requests pass.
        _connected_client(controller).write_gate = self.elector.may_write
        self._acquiring = asyncio.create_task(self.elector.acquire())
        try:
            try:
                await self._acquiring
            except asyncio.CancelledError:
                if self._stepping is None:
                    raise  # this task itself was cancelled
                return  # stepped down while still a standby
            # Health counts from here: a standby that waited for hours has not been failing meanwhile.
            controller.last_success = time.monotonic()
            self._tasks = [asyncio.create_task(controller.run()), asyncio.create_task(self.elector.hold())]
            done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled():
                    task.result()  # LeadershipLost, or whatever stopped the workers
        finally:
            await self.step_down()

    async def step_down(self) -> None:
        """Stop the workers, then release the lease so a standby takes over at once. Runs as kopf's
        cleanup on a graceful stop (before kopf cancels leftover tasks), and when the work ends;
        every caller waits for the one step-down."""
        if self._stepping is None:
            self._stepping = asyncio.create_task(self._step_down())
        await asyncio.shield(self._stepping)

    async def _step_down(self) -> None:
        for task in (self._acquiring, *self._tasks):
            if task is not None:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Only now, with no worker left that could write, may a standby take over.
        await self.elector.release()
        if self.controller.client is not None:
            await self.controller.client.close()
