"""The running operator: kopf watches MimoDeployments and their children and feeds a work queue;
workers run `reconcile` for one deployment at a time each.

kopf is used for what it is best at (watch streams, login, liveness) through `on.event` handlers,
which store nothing on the resource. The queue de-duplicates keys, never runs one deployment twice
at once, re-runs it if an event arrived meanwhile, backs off exponentially on failure (no hot
loops), and re-enqueues everything every resync period.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any, cast

import kopf

from mimo_operator.api import constants as c
from mimo_operator.handlers.metrics import OperatorMetrics
from mimo_operator.handlers.reconcile import Outcome, reconcile
from mimo_operator.handlers.settings import OperatorSettings
from mimo_operator.kube.cache import ChildCache
from mimo_operator.kube.children import api_serves
from mimo_operator.kube.client import KubeClient
from mimo_operator.render import RenderConfig, child_kinds

logger = logging.getLogger("mimo_operator")
Key = tuple[str, str]

# Children whose changes (including deletion) must bring the owner back to its rendered state.
WATCHED_CHILDREN: tuple[tuple[str, str, str], ...] = (
    ("apps", "v1", "statefulsets"),
    ("", "v1", "services"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
    ("keda.sh", "v1alpha1", "scaledobjects"),
    ("monitoring.coreos.com", "v1", "podmonitors"),
    ("gateway.networking.k8s.io", "v1", "httproutes"),
    ("inference.networking.k8s.io", "v1", "inferencepools"),
)


class Controller:
    def __init__(
        self,
        settings: OperatorSettings,
        on_outcome: Callable[[Key, Outcome | None, float], None] | None = None,
        on_request: Callable[[str, str, int], None] | None = None,
        on_forget: Callable[[Key], None] | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.render_config()
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.queue: asyncio.Queue[Key] = asyncio.Queue()
        self.queued: set[Key] = set()
        self.active: set[Key] = set()
        self.again: set[Key] = set()
        self.failures: dict[Key, int] = {}
        self.client: KubeClient | None = None
        self.connected = asyncio.Event()
        self.last_success = time.monotonic()
        self._on_outcome = on_outcome
        self._on_request = on_request
        self._on_forget = on_forget
        self._capabilities = (False, False, False, False)
        self.child_versions: dict[tuple[str, str, str], str] = {}
        self.cache = ChildCache()
        self._discovered_at = -math.inf

    def connect(self, info: Any) -> None:
        if self.client is None:
            self.client = KubeClient.from_connection_info(info, self._on_request)
        self.connected.set()

    # -- the queue -------------------------------------------------------------------------------

    def enqueue(self, key: Key) -> None:
        if key in self.active:
            self.again.add(key)
        elif key not in self.queued:
            self.queued.add(key)
            self.queue.put_nowait(key)

    def observe(self, event_type: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self.bodies.pop(key, None)
            self.failures.pop(key, None)
            if self._on_forget:
                self._on_forget(key)
            return
        known = self.bodies.get(key)
        self.bodies[key] = body
        if known is not None and _version(known) == _version(body):
            return  # a re-list after a watch restart, or the echo of this operator's status write
        self.enqueue(key)

    def observe_child(self, event_type: str | None, body: dict[str, Any]) -> None:
        self.cache.observe(event_type, body)
        meta = body.get("metadata", {})
        child = (meta.get("namespace", ""), body.get("kind", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self.child_versions.pop(child, None)  # always repaired, whatever its version says
        elif self.child_versions.get(child) == meta.get("resourceVersion"):
            return  # unchanged since it was last seen or applied
        else:
            self.child_versions[child] = meta.get("resourceVersion", "")
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == c.KIND and ref.get("controller"):
                self.enqueue((meta.get("namespace", ""), ref["name"]))

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            self.queued.discard(key)
            body = self.bodies.get(key)
            if body is None or self.client is None:
                continue
            self.active.add(key)
            started = time.monotonic()
            try:
                config = await self._config(self.client)
                outcome = await reconcile(
                    self.client, copy.deepcopy(body), config, self.settings.field_manager, self.cache
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = self.failures.get(key, 0) + 1
                self.failures[key] = failures
                delay = min(2.0**failures, self.settings.max_backoff_seconds)
                logger.warning("reconcile of %s/%s failed (retry in %.0fs): %s", *key, delay, exc)
                asyncio.get_running_loop().call_later(delay, self.enqueue, key)
                if self._on_outcome:
                    self._on_outcome(key, None, time.monotonic() - started)
            else:
                self.failures.pop(key, None)
                self.last_success = time.monotonic()
                if outcome.written is not None and key in self.bodies:
                    self.bodies[key] = outcome.written
                self.cache.record(key[0], key[1], outcome.applied_states, outcome.pruned_keys)
                for state in outcome.applied_states:
                    meta = state["metadata"]
                    self.child_versions[(key[0], state["kind"], meta["name"])] = meta["resourceVersion"]
                if outcome.retry_after is not None:
                    asyncio.get_running_loop().call_later(outcome.retry_after, self.enqueue, key)
                if outcome.applied or outcome.pruned or outcome.status_written:
                    logger.info(
                        "reconciled %s/%s: phase %s, applied %s, pruned %s",
                        *key,
                        outcome.phase,
                        outcome.applied or "-",
                        outcome.pruned or "-",
                    )
                if self._on_outcome:
                    self._on_outcome(key, outcome, time.monotonic() - started)
            finally:
                self.active.discard(key)
                if key in self.again:
                    self.again.discard(key)
                    self.enqueue(key)

    async def _config(self, client: KubeClient) -> RenderConfig:
        """Render settings plus which optional APIs the cluster serves, rediscovered periodically."""
        now = time.monotonic()
        if now - self._discovered_at > self.settings.discovery_seconds:
            self._capabilities = (
                await api_serves(client, "keda.sh/v1alpha1", "scaledobjects"),
                await api_serves(client, "monitoring.coreos.com/v1", "podmonitors"),
                await api_serves(client, "gateway.networking.k8s.io/v1", "httproutes"),
                await api_serves(client, "inference.networking.k8s.io/v1", "inferencepools"),
            )
            self._discovered_at = now
        keda, pod_monitor, gateway, pool = self._capabilities
        return dataclasses.replace(
            self.config,
            keda_available=keda,
            pod_monitor_available=pod_monitor,
            gateway_api_available=gateway,
            inference_pool_available=pool,
        )

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for key in list(self.bodies):
                self.enqueue(key)

    async def run(self) -> None:
        await self.connected.wait()
        assert self.client is not None
        # Before any reconcile: every existing child in the cache, so nothing is taken for missing.
        config = await self._config(self.client)
        namespaces = None if self.settings.all_namespaces else self.settings.namespaces
        await self.cache.prime(self.client, namespaces, child_kinds(config))
        tasks = [asyncio.create_task(self._work()) for _ in range(self.settings.workers)]
        tasks.append(asyncio.create_task(self._resync()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            if self.client is not None:
                await self.client.close()

    def healthy(self) -> bool:
        """Connected, and not stuck: some reconcile succeeded recently or nothing is failing."""
        if not self.connected.is_set():
            return False
        stale = time.monotonic() - self.last_success > 3 * self.settings.resync_seconds
        return not (stale and self.failures)


def _version(body: dict[str, Any]) -> str:
    return str(body.get("metadata", {}).get("resourceVersion", ""))


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # kopf's bookkeeping, if any handler ever needs it, goes to annotations, never to status.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=c.GROUP)
        settings.posting.enabled = False  # events are posted by reconcile, once per transition
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.watching.reconnect_backoff = 1.0
        # Watching listed namespaces needs no cluster-wide reads: without this kopf spends a minute
        # retrying to list namespaces and CRDs that namespaced RBAC (rightly) does not grant.
        settings.scanning.disabled = not controller.settings.all_namespaces

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> Any:
        info = kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
        if info is not None:
            controller.connect(info)
        return info

    @kopf.on.event(c.GROUP, c.VERSION, c.PLURAL, registry=registry)
    def on_mimo(event: kopf.RawEvent, **_: Any) -> None:
        controller.observe(event.get("type"), cast(dict[str, Any], event["object"]))

    def on_child(event: kopf.RawEvent, **_: Any) -> None:
        controller.observe_child(event.get("type"), cast(dict[str, Any], event["object"]))

    for group, version, plural in WATCHED_CHILDREN:
        kopf.on.event(group, version, plural, labels={c.LABEL_MANAGED_BY: c.MANAGED_BY}, registry=registry)(
            on_child
        )

    @kopf.on.probe(id="reconciler", registry=registry)
    def probe(**_: Any) -> str:
        if not controller.healthy():
            raise kopf.PermanentError("not connected, or every reconcile has failed for too long")
        return "ok"

    return registry


async def run_operator(
    settings: OperatorSettings,
    controller: Controller | None = None,
    stop_flag: asyncio.Event | None = None,
) -> None:
    if controller is None:
        metrics = OperatorMetrics()
        controller = Controller(settings, metrics.on_outcome, metrics.on_request, metrics.forget)
        if settings.metrics_port:
            metrics.serve(settings.metrics_port)
    registry = build_registry(controller)
    liveness = f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
    worker = asyncio.create_task(controller.run())
    try:
        await kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=settings.all_namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=liveness,
            stop_flag=stop_flag,
        )
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
