"""PersistentVolumeClaims bound to hostPath volumes: the sandbox has no storage provisioner, so the
demo and the tests bind the claims the examples mount (on a real cluster they hold the weights)."""

from __future__ import annotations

import json
from typing import Any


def bound_claim(namespace: str, claim: str, size: str = "700Gi") -> list[dict[str, Any]]:
    """A PersistentVolume pre-bound to the claim `namespace/claim`, and that claim."""
    volume = f"{namespace}-{claim}"
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": volume},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteMany"],
                "hostPath": {"path": f"/tmp/{volume}"},
                "claimRef": {"namespace": namespace, "name": claim},
                "persistentVolumeReclaimPolicy": "Delete",
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": size}},
                "volumeName": volume,
                "storageClassName": "",
            },
        },
    ]


def bound_claims_json(namespace: str, *claims: str) -> str:
    """`kubectl apply -f -` input for several bound claims."""
    items = [obj for claim in claims for obj in bound_claim(namespace, claim)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
