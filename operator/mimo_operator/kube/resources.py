"""REST paths of the kinds the operator touches: one table, so no call site spells a URL itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mimo_operator.api import constants


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str

    @property
    def base(self) -> str:
        return f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"

    def collection(self, namespace: str | None) -> str:
        if namespace:  # no namespace: a cluster-scoped kind (Node), or a list across all namespaces
            return f"{self.base}/namespaces/{namespace}/{self.plural}"
        return f"{self.base}/{self.plural}"

    def item(self, namespace: str | None, name: str) -> str:
        return f"{self.collection(namespace)}/{name}"

    def stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        """`obj` with this kind's apiVersion and kind, which the items of a LIST come without."""
        obj.setdefault("apiVersion", self.api_version)
        obj.setdefault("kind", self.kind)
        return obj


KINDS: dict[tuple[str, str], Kind] = {
    (k.api_version, k.kind): k
    for k in (
        Kind("v1", "Service", "services"),
        Kind("v1", "Event", "events"),
        Kind("v1", "Pod", "pods"),
        Kind("v1", "Node", "nodes"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Kind("apps/v1", "StatefulSet", "statefulsets"),
        Kind("batch/v1", "Job", "jobs"),
        Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        Kind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
        Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
        Kind(constants.API_VERSION, constants.KIND, constants.PLURAL),
        Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects"),
        Kind("monitoring.coreos.com/v1", "PodMonitor", "podmonitors"),
        Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
        Kind("inference.networking.k8s.io/v1", "InferencePool", "inferencepools"),
    )
}
MIMO = KINDS[(constants.API_VERSION, constants.KIND)]
NODE = KINDS[("v1", "Node")]


def kind_of(obj: dict[str, object]) -> Kind:
    return KINDS[(str(obj["apiVersion"]), str(obj["kind"]))]
