"""Bring a MimoDeployment's children to the rendered state: apply what differs, prune what is no
longer wanted, and never touch an object of the same name that someone else owns."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from mimo_operator.api import constants
from mimo_operator.kube.client import ApiError, KubeClient
from mimo_operator.kube.compare import up_to_date
from mimo_operator.kube.resources import KINDS, kind_of


@dataclass(frozen=True)
class Owner:
    namespace: str
    name: str
    uid: str


@dataclass
class SyncResult:
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    statefulsets: list[dict[str, Any]] = field(default_factory=list)
    autoscaler: dict[str, Any] | None = None  # the HorizontalPodAutoscaler as the server has it
    states: list[dict[str, Any]] = field(default_factory=list)  # objects as the server returned them
    pruned_keys: list[tuple[str, str, str]] = field(default_factory=list)


class ChildRejected(Exception):
    """The API server refuses a rendered child (invalid pass-through content such as env or affinity)."""


def _owned_by(obj: dict[str, Any], owner: Owner) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == owner.uid and ref.get("controller") for ref in refs)


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])


def _describe(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


@dataclass
class Conflicts:
    strangers: list[str] = field(default_factory=list)  # someone else's objects under our names
    predecessors: list[str] = field(default_factory=list)  # left by a deleted deployment of this name


def _predecessor(obj: dict[str, Any], owner: Owner) -> bool:
    """Controlled by an earlier MimoDeployment of the same name: the garbage collector is removing it."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(
        ref.get("controller") and ref.get("kind") == constants.KIND and ref.get("name") == owner.name
        for ref in refs
    )


def _retained_for(obj: dict[str, Any], desired: dict[str, Any], owner: Owner) -> bool:
    """A child rendered without an owner (a weights claim kept when its deployment is deleted) that
    nobody controls and that is labelled for a deployment of this name: ours to adopt."""
    if desired.get("metadata", {}).get("ownerReferences"):
        return False
    meta = obj.get("metadata", {})
    if any(ref.get("controller") for ref in meta.get("ownerReferences") or []):
        return False
    return (meta.get("labels") or {}).get(constants.LABEL_DEPLOYMENT) == owner.name


def _controlled_by_a_deployment(obj: dict[str, Any]) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("controller") and ref.get("kind") == constants.KIND for ref in refs)


async def find_conflicts(
    client: KubeClient,
    owner: Owner,
    desired: Sequence[dict[str, Any]],
    live: dict[tuple[str, str, str], dict[str, Any]],
    shareable: Collection[tuple[str, str, str]] = (),
) -> Conflicts:
    """Desired names already used by objects we do not own (checked before anything is written).
    A `shareable` child (a download Job whose name is its content) that another MimoDeployment
    controls is no conflict: applying it changes nothing but who controls it."""
    conflicts = Conflicts()
    for obj in desired:
        found = live.get(_key(obj))
        if found is None:
            # Not labelled as ours (or its labels were edited away): look it up by name.
            found = await client.get(kind_of(obj).item(owner.namespace, obj["metadata"]["name"]))
            if found is not None:
                live[_key(obj)] = found
        if found is None or _owned_by(found, owner) or _retained_for(found, obj, owner):
            continue
        if _predecessor(found, owner):
            conflicts.predecessors.append(_describe(obj))
        elif _key(obj) in shareable and _controlled_by_a_deployment(found):
            continue
        else:
            conflicts.strangers.append(_describe(obj))
    return conflicts


# Children that carry content the CRD passes through unvalidated (env, tolerations, affinity, secret
# and priority class names): the API server is the one that can say whether it is valid.
VALIDATED_BY_DRY_RUN = frozenset({"StatefulSet"})


async def sync_children(
    client: KubeClient,
    owner: Owner,
    desired: Sequence[dict[str, Any]],
    live: dict[tuple[str, str, str], dict[str, Any]],
    field_manager: str,
    keep: Collection[tuple[str, str, str]] = (),
) -> SyncResult:
    """Apply what differs and prune the rest; a child the API server refuses raises ChildRejected
    before anything is written, so a bad spec never leaves a half-made deployment behind. Children
    in `keep` stay exactly as they are (neither applied nor pruned) and are reported as they are."""
    result = SyncResult()
    for key in keep:
        if key in live and key[1] == "StatefulSet":
            result.statefulsets.append(live[key])
    wanted = {_key(obj) for obj in desired} | set(keep)
    changed = [obj for obj in desired if not up_to_date(live.get(_key(obj)), obj, field_manager)]
    changed_keys = {_key(obj) for obj in changed}
    for obj in changed:
        if obj["kind"] in VALIDATED_BY_DRY_RUN:
            path = kind_of(obj).item(owner.namespace, obj["metadata"]["name"])
            try:
                await client.apply(path, obj, field_manager, dry_run=True)
            except ApiError as exc:
                if exc.status in (400, 422) or exc.malformed:
                    raise ChildRejected(f"the API server refuses {_describe(obj)}: {exc.message}") from None
                raise
            break  # groups of one deployment share their template: one check covers them all
    for obj in desired:
        current = live.get(_key(obj))
        if _key(obj) not in changed_keys and current is not None:
            state = current
        else:
            state = await client.apply(
                kind_of(obj).item(owner.namespace, obj["metadata"]["name"]), obj, field_manager
            )
            result.applied.append(_describe(obj))
        if obj["kind"] == "StatefulSet":
            result.statefulsets.append(state)
        elif obj["kind"] == "HorizontalPodAutoscaler":
            result.autoscaler = state
    for key, obj in live.items():
        if key not in wanted and _owned_by(obj, owner):
            await client.delete(kind_of(obj).item(owner.namespace, key[2]), uid=obj["metadata"].get("uid"))
            result.pruned.append(_describe(obj))
            result.pruned_keys.append(key)
    return result


async def api_serves(client: KubeClient, group_version: str, plural: str) -> bool:
    """Whether the cluster serves a resource (e.g. a CRD that may not be installed)."""
    found = await client.get(f"/apis/{group_version}")
    return found is not None and any(r.get("name") == plural for r in found.get("resources", []))


async def claim_exists(client: KubeClient, namespace: str, name: str) -> bool:
    return await client.get(KINDS[("v1", "PersistentVolumeClaim")].item(namespace, name)) is not None


async def list_pods(client: KubeClient, owner: Owner) -> list[dict[str, Any]]:
    """The deployment's pods (read only while it is not Ready, to explain why)."""
    return await client.list(
        KINDS[("v1", "Pod")].collection(owner.namespace), f"{constants.LABEL_DEPLOYMENT}={owner.name}"
    )
