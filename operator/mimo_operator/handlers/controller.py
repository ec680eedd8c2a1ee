"""The controller: kopf's MimoDeployment events (handlers/runtime.py) and the operator's own watches of
the children feed a work queue (handlers/workqueue.py); workers run `reconcile`, one deployment each.

Children are watched by kube/watch.py with server-side label selectors, and every LIST replaces what the
child cache held, so a child deleted during a watch gap is noticed. A kopf re-list of MimoDeployments
(type None events) is checked against what is held by one LIST of our own, so a deployment deleted
during a gap is forgotten rather than reconciled from its last body. Failures back off exponentially
(capped), everything is re-enqueued every resync period, and no exception of one deployment stops a
worker.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from mimo_operator.api import constants
from mimo_operator.handlers.reconcile import Outcome, StaleObject, reconcile
from mimo_operator.handlers.settings import OperatorSettings
from mimo_operator.handlers.workqueue import WorkQueue, backoff_seconds
from mimo_operator.kube.cache import ChildCache, older, resource_version
from mimo_operator.kube.children import api_serves
from mimo_operator.kube.client import ApiError, KubeClient, WriteFenced
from mimo_operator.kube.resources import KINDS, MIMO, Kind
from mimo_operator.kube.watch import watch_kind
from mimo_operator.render import RenderConfig, child_kinds

logger = logging.getLogger("mimo_operator")
Key = tuple[str, str]
# kopf yields a re-list's objects one by one with no end marker: check them against what is held once
# this long has passed without another listed object.
RELIST_SETTLE_SECONDS = 2.0
CHILD_SELECTOR = f"{constants.LABEL_MANAGED_BY}={constants.MANAGED_BY}"


class Controller:
    def __init__(
        self,
        settings: OperatorSettings,
        on_outcome: Callable[[Key, Outcome | None, float], None] | None = None,
        on_request: Callable[[str, str, int], None] | None = None,
        on_forget: Callable[[Key], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.render_config()
        self.policy = settings.author_policy()
        self.bodies: dict[Key, dict[str, Any]] = {}
        self.queue: WorkQueue[Key] = WorkQueue()
        self.failures: dict[str, int] = {}  # by UID: a deployment recreated under the same name starts afresh
        self.client: KubeClient | None = None
        self.connected = asyncio.Event()
        self.last_success = time.monotonic()
        self._on_outcome = on_outcome
        self._on_request = on_request
        self._on_forget = on_forget
        self._on_error = on_error
        self._capabilities = (False, False, False, False)
        self.child_versions: dict[tuple[str, str, str], str] = {}
        self.cache = ChildCache()
        self._discovered_at = -math.inf
        self._relist_audit: asyncio.TimerHandle | None = None
        self._after_audit: set[Key] = set()  # owners of vanished children, reconciled after the audit
        self._reported: set[tuple[str, str]] = set()  # (uid, error) logged with a traceback already
        self._watches: dict[tuple[str, str, str | None], asyncio.Task[None]] = {}

    def connect(self, info: Any, relogin: Callable[[], Any] | None = None) -> None:
        """Credentials from a kopf login: the first builds the client, later ones (kopf logs in again
        after a 401 of its own) replace the credentials it sends."""
        if self.client is None:
            self.client = KubeClient.from_connection_info(info, self._on_request, relogin)
        else:
            self.client.use_credentials(info)
        self.connected.set()

    # -- the queue -------------------------------------------------------------------------------

    def enqueue(self, key: Key) -> None:
        self.queue.add(key)

    def forget(self, key: Key) -> None:
        body = self.bodies.pop(key, None)
        if body is not None:
            self.failures.pop(_uid(body), None)
        if self._on_forget:
            self._on_forget(key)

    def observe(self, event_type: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata", {})
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            if _uid(self.bodies.get(key, body)) == _uid(body):
                self.forget(key)
            return
        if event_type is None:
            self._schedule_relist_audit()
        known = self.bodies.get(key)
        if known is not None and _uid(known) == _uid(body):
            if older(body, known):
                return  # an event that was on its way while this operator's own write returned
            if resource_version(known) == resource_version(body):
                return  # a re-list after a watch restart, or the echo of this operator's status write
        self.bodies[key] = body
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
        self._enqueue_owner(body)

    def observe_child_list(self, kind: Kind, namespace: str | None, items: list[dict[str, Any]]) -> None:
        """A watch (re)started with a LIST. Children that vanished meanwhile bring their owner back,
        but only after the owners themselves were checked: a gap that hid a child's deletion may also
        have hidden its owner's, and children recreated for a deleted owner would be collected again."""
        vanished = self.cache.replace(kind.api_version, kind.kind, namespace, items)
        for gone in vanished:
            meta = gone.get("metadata", {})
            self.child_versions.pop((meta.get("namespace", ""), kind.kind, meta.get("name", "")), None)
            self._after_audit.update(self._owners(gone))
        if vanished:
            self._schedule_relist_audit()
        for item in items:
            meta = item.get("metadata", {})
            child = (meta.get("namespace", ""), kind.kind, meta.get("name", ""))
            if self.child_versions.get(child) != meta.get("resourceVersion"):
                self.child_versions[child] = meta.get("resourceVersion", "")
                self._enqueue_owner(item)

    def _enqueue_owner(self, child: dict[str, Any]) -> None:
        for key in self._owners(child):
            if key in self.bodies:
                self.enqueue(key)

    @staticmethod
    def _owners(child: dict[str, Any]) -> list[Key]:
        meta = child.get("metadata", {})
        return [
            (meta.get("namespace", ""), ref["name"])
            for ref in meta.get("ownerReferences") or []
            if ref.get("kind") == constants.KIND and ref.get("controller")
        ]

    # -- re-lists of MimoDeployments ------------------------------------------------------------

    def _schedule_relist_audit(self) -> None:
        if self._relist_audit is not None:
            self._relist_audit.cancel()
        loop = asyncio.get_running_loop()
        self._relist_audit = loop.call_later(
            RELIST_SETTLE_SECONDS, lambda: loop.create_task(self.audit_deployments())
        )

    async def audit_deployments(self) -> None:
        """One LIST of MimoDeployments against what is held: forget what no longer exists (or exists
        under a new UID, which the LIST then provides)."""
        if self.client is None:
            return
        scopes = self._scopes()
        try:
            listed: dict[Key, dict[str, Any]] = {}
            for namespace in scopes:
                for item in await self.client.list(MIMO.collection(namespace)):
                    meta = item.get("metadata", {})
                    listed[(meta.get("namespace", ""), meta.get("name", ""))] = item
        except ApiError as exc:
            logger.warning("checking MimoDeployments after a re-list failed (again soon): %s", exc)
            self._schedule_relist_audit()
            return
        for key, body in list(self.bodies.items()):
            found = listed.get(key)
            if found is None:
                logger.info("%s/%s was deleted while the watch was away; forgetting it", *key)
                self.forget(key)
            elif _uid(found) != _uid(body):
                self.observe("ADDED", MIMO.stamp(found))
        waiting, self._after_audit = self._after_audit, set()
        for key in waiting:
            if key in self.bodies:
                self.enqueue(key)

    def _scopes(self) -> list[str | None]:
        """Namespaces to list and watch in; None is every namespace."""
        return [None] if self.settings.all_namespaces else list(self.settings.namespaces)

    # -- workers ---------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            key = await self.queue.take()
            try:
                await self._reconcile_one(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in the bookkeeping below must not take the worker with it
                logger.exception("internal error while handling %s/%s", *key)
                if self._on_error:
                    self._on_error("internal")
            finally:
                self.queue.done(key)

    async def _reconcile_one(self, key: Key) -> None:
        body = self.bodies.get(key)
        if body is None or self.client is None:
            return
        started = time.monotonic()
        try:
            config = await self._config(self.client)
            outcome = await reconcile(
                self.client, copy.deepcopy(body), config, self.settings.field_manager, self.cache, self.policy
            )
        except asyncio.CancelledError:
            raise
        except StaleObject as stale:
            await self._refresh(key, stale)
            return
        except Exception as exc:
            self._failed(key, body, exc, time.monotonic() - started)
            return
        self.failures.pop(_uid(body), None)
        self.last_success = time.monotonic()
        if outcome.written is not None and key in self.bodies:
            self.bodies[key] = outcome.written
        self.cache.record(key[0], key[1], outcome.applied_states, outcome.pruned_keys)
        for state in outcome.applied_states:
            meta = state["metadata"]
            self.child_versions[(key[0], state["kind"], meta["name"])] = meta["resourceVersion"]
        if outcome.retry_after is not None:
            self.queue.add_after(outcome.retry_after, key)
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

    async def _refresh(self, key: Key, stale: StaleObject) -> None:
        """The status write found a newer object (or none): read it and go again."""
        assert self.client is not None
        fresh = None if stale.gone else await self.client.get(MIMO.item(*key))
        if fresh is None:
            self.forget(key)
            return
        self.bodies[key] = MIMO.stamp(fresh)
        self.enqueue(key)

    def _failed(self, key: Key, body: dict[str, Any], exc: Exception, seconds: float) -> None:
        uid = _uid(body)
        failures = self.failures.get(uid, 0) + 1
        self.failures[uid] = failures
        delay = backoff_seconds(failures, self.settings.max_backoff_seconds)
        if isinstance(exc, ApiError | WriteFenced):  # refused by the server, or by losing the lease
            kind = "api"
            logger.warning("reconcile of %s/%s failed (retry in %.0fs): %s", *key, delay, exc)
        else:
            # A programming error: its traceback once per deployment and error, then one line a retry.
            kind = "internal"
            signature = (uid, f"{type(exc).__name__}: {exc}")
            if signature in self._reported:
                logger.error("reconcile of %s/%s failed again (retry in %.0fs): %r", *key, delay, exc)
            else:
                self._reported.add(signature)
                logger.exception("reconcile of %s/%s raised (retry in %.0fs)", *key, delay)
        if self._on_error:
            self._on_error(kind)
        self.queue.add_after(delay, key)
        if self._on_outcome:
            self._on_outcome(key, None, seconds)

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
            self._watch_children(client)
        return self._render_config()

    def _render_config(self) -> RenderConfig:
        keda, pod_monitor, gateway, pool = self._capabilities
        return dataclasses.replace(
            self.config,
            keda_available=keda,
            pod_monitor_available=pod_monitor,
            gateway_api_available=gateway,
            inference_pool_available=pool,
        )

    def _watch_children(self, client: KubeClient) -> list[asyncio.Event]:
        """A watch per child kind the cluster serves and namespace; the events of first LISTs."""
        config = self._render_config()
        scopes = self._scopes()
        listed: list[asyncio.Event] = []
        for api_version, kind_name in child_kinds(config):
            kind = KINDS[(api_version, kind_name)]
            for namespace in scopes:
                if (api_version, kind_name, namespace) in self._watches:
                    continue
                event = asyncio.Event()
                self._watches[(api_version, kind_name, namespace)] = asyncio.create_task(
                    watch_kind(
                        client,
                        kind,
                        namespace,
                        CHILD_SELECTOR,
                        self.observe_child_list,
                        self.observe_child,
                        event,
                    )
                )
                listed.append(event)
        return listed

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            await self.audit_deployments()
            for key in list(self.bodies):
                self.enqueue(key)

    async def run(self) -> None:
        await self.connected.wait()
        assert self.client is not None
        # Before any reconcile: every child watch has listed once, so nothing is taken for missing.
        await self._config(self.client)
        await asyncio.gather(*(event.wait() for event in self._watch_children(self.client)))
        tasks = [asyncio.create_task(self._work()) for _ in range(self.settings.workers)]
        tasks.append(asyncio.create_task(self._resync()))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *self._watches.values()]:
                task.cancel()
            if self.client is not None:
                await self.client.close()

    def healthy(self) -> bool:
        """Connected, and not stuck: some reconcile succeeded recently or nothing is failing."""
        if not self.connected.is_set():
            return False
        stale = time.monotonic() - self.last_success > 3 * self.settings.resync_seconds
        return not (stale and self.failures)


def _uid(body: dict[str, Any]) -> str:
    return str(body.get("metadata", {}).get("uid", ""))
