"""Children as the watches last reported them, so a reconcile needs no LIST of its own.

Listing four kinds per reconcile was half of all the operator's requests (make bench). The operator
already receives every child event; this keeps the latest body of each, grouped by deployment, and
takes the operator's own apply results as they return. Each watch starts with a LIST (kube/watch.py)
that replaces what the cache held for that kind and namespace: whatever it held and the LIST lacks was
deleted while nobody watched, and is handed back so its owner is reconciled (no ghosts after a watch
gap). Reconciles start only after every watch has listed once, so a restarted operator sees every
existing child (and writes nothing); a kind that is not watched (an optional CRD installed later) is
listed on demand.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from mimo_operator.api import constants
from mimo_operator.kube.client import KubeClient
from mimo_operator.kube.resources import KINDS

ChildKey = tuple[str, str, str]  # apiVersion, kind, name
Group = tuple[str, str]  # namespace, deployment


def child_key(obj: dict[str, Any]) -> ChildKey:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def resource_version(obj: dict[str, Any]) -> str:
    return str(obj.get("metadata", {}).get("resourceVersion", ""))


def older(obj: dict[str, Any], than: dict[str, Any] | None) -> bool:
    """`obj` is an earlier version than `than`. resourceVersions are opaque to clients by contract,
    but the kube-apiserver's are etcd revisions (integers that only grow); anything else compares as
    not older, so an unknown format degrades to "latest event wins"."""
    if than is None:
        return False
    a, b = resource_version(obj), resource_version(than)
    return a.isdigit() and b.isdigit() and int(a) < int(b)


class ChildCache:
    def __init__(self) -> None:
        self._groups: dict[Group, dict[ChildKey, dict[str, Any]]] = {}
        self._where: dict[tuple[str, ChildKey], Group] = {}  # (namespace, child) -> its group
        self.primed: set[tuple[str, str]] = set()  # (apiVersion, kind) loaded by a LIST

    @staticmethod
    def _group(obj: dict[str, Any]) -> Group | None:
        meta = obj.get("metadata", {})
        deployment = (meta.get("labels") or {}).get(constants.LABEL_DEPLOYMENT)
        return (meta.get("namespace", ""), deployment) if deployment else None

    def observe(self, event_type: str | None, obj: dict[str, Any]) -> None:
        if "apiVersion" not in obj or "kind" not in obj:
            return
        key = child_key(obj)
        namespace = obj.get("metadata", {}).get("namespace", "")
        held = self.get(namespace, key)
        if held is not None and older(obj, held):
            return  # an event that was on its way while the operator's own write returned
        # Wherever it was held before: its deployment label may have been edited (or removed).
        held_in = self._where.pop((namespace, key), None)
        if held_in is not None:
            self._groups.get(held_in, {}).pop(key, None)
        group = self._group(obj)
        if event_type == "DELETED" or group is None:
            return
        self._groups.setdefault(group, {})[key] = obj
        self._where[(namespace, key)] = group

    def get(self, namespace: str, key: ChildKey) -> dict[str, Any] | None:
        group = self._where.get((namespace, key))
        return None if group is None else self._groups.get(group, {}).get(key)

    def replace(
        self, api_version: str, kind: str, namespace: str | None, items: Iterable[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """A fresh LIST of one kind (in one namespace, or all when None) becomes the truth: what the
        cache held and the LIST lacks is dropped and returned."""
        listed = {(obj["metadata"].get("namespace", ""), child_key(obj)) for obj in items}
        vanished: list[dict[str, Any]] = []
        for (group_namespace, _), children in self._groups.items():
            if namespace is not None and group_namespace != namespace:
                continue
            for key in [k for k in children if (k[0], k[1]) == (api_version, kind)]:
                if (group_namespace, key) not in listed:
                    vanished.append(children.pop(key))
                    self._where.pop((group_namespace, key), None)
        for obj in items:
            self.observe(None, obj)
        self.primed.add((api_version, kind))
        return vanished

    def record(
        self, namespace: str, deployment: str, applied: Iterable[dict[str, Any]], pruned: Iterable[ChildKey]
    ) -> None:
        """What the operator's own requests returned: newer than any event that may still be on its way."""
        for obj in applied:
            obj.setdefault("metadata", {}).setdefault("namespace", namespace)
            self.observe(None, obj)
        for key in pruned:
            self._groups.get((namespace, deployment), {}).pop(key, None)
            self._where.pop((namespace, key), None)

    async def children(
        self, client: KubeClient, namespace: str, deployment: str, kinds: Sequence[tuple[str, str]]
    ) -> dict[ChildKey, dict[str, Any]]:
        """The deployment's children of `kinds`, listing only kinds the cache was not primed with."""
        cached = self._groups.get((namespace, deployment), {})
        live = {key: obj for key, obj in cached.items() if (key[0], key[1]) in kinds}
        selector = f"{constants.LABEL_DEPLOYMENT}={deployment}"
        for api_version, kind in kinds:
            if (api_version, kind) in self.primed:
                continue
            listed_kind = KINDS[(api_version, kind)]
            for item in await client.list(listed_kind.collection(namespace), selector):
                live[child_key(listed_kind.stamp(item))] = item
        return live
