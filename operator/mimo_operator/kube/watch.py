"""Watches of the operator's children: one LIST, then WATCH from its resourceVersion, with the label
selector applied by the API server.

kopf's watches cannot take a server-side label selector, and after a watch gap (410 Gone, a broken
connection) they re-list and yield only what still exists: nothing says what vanished meanwhile. This
loop hands every LIST to the caller whole (`on_list`), so the cache can replace what it held for that
kind and namespace and see the ghosts, and it hands single changes to `on_event`. A child whose
labels were edited away stops matching the selector; the API server then sends DELETED for it, so
its owner is reconciled and the labels put back (ownership is decided by owner references, not labels).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from mimo_operator.kube.client import ApiError, KubeClient
from mimo_operator.kube.resources import Kind

logger = logging.getLogger(__name__)

OnList = Callable[[Kind, str | None, list[dict[str, Any]]], None]
OnEvent = Callable[[str, dict[str, Any]], None]
MAX_RETRY_SECONDS = 30.0


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


async def watch_kind(
    client: KubeClient,
    kind: Kind,
    namespace: str | None,
    selector: str,
    on_list: OnList,
    on_event: OnEvent,
    listed: asyncio.Event | None = None,
) -> None:
    """Run until cancelled. `listed` is set after the first LIST has been handed over."""
    path = kind.collection(namespace)
    delay = 1.0
    while True:
        try:
            items, version = await client.list_with_version(path, selector)
            on_list(kind, namespace, [kind.stamp(item) for item in items])
            if listed is not None:
                listed.set()
            delay = 1.0
            while True:  # each WATCH ends after the server's timeout; resume from the last version
                version = await _follow(client, path, version, selector, kind, on_event)
        except asyncio.CancelledError:
            raise
        except Gone:
            where = namespace or "all namespaces"
            logger.info("watch of %s in %s expired; listing again", kind.plural, where)
        except (ApiError, aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning(
                "watch of %s in %s failed (again in %.0fs): %s",
                kind.plural,
                namespace or "all namespaces",
                delay,
                exc,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)


async def _follow(
    client: KubeClient, path: str, version: str, selector: str, kind: Kind, on_event: OnEvent
) -> str:
    async for event in client.watch(path, version, selector):
        kind_of_event = event.get("type", "")
        obj = event.get("object") or {}
        if kind_of_event == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ApiError(int(obj.get("code") or 0), "watch", path, obj)
        version = obj.get("metadata", {}).get("resourceVersion") or version
        if kind_of_event == "BOOKMARK":
            continue
        on_event(kind_of_event, kind.stamp(obj))
    return version
