"""Simulated GPU node pools: a small YAML config turned into kwok-managed Node objects.

The operator selects GPUs the way a real cluster labels them (NVIDIA GPU feature discovery labels and
the `nvidia.com/gpu` extended resource), so the sandbox's fake nodes carry exactly those. Product names
and memory come from the GPU catalog, never from here, so the planner and the sandbox cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from mimo_operator.models.gpus import GPU_CATALOG, GpuSpec

# kwok only manages nodes carrying this annotation (`--manage-nodes-with-annotation-selector`).
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
POOL_LABEL = "sandbox.mimo-operator/pool"

GPU_RESOURCE = "nvidia.com/gpu"
LABEL_GPU_PRODUCT = "nvidia.com/gpu.product"
LABEL_GPU_MEMORY = "nvidia.com/gpu.memory"
LABEL_GPU_COUNT = "nvidia.com/gpu.count"
LABEL_GPU_PRESENT = "nvidia.com/gpu.present"

# Host sizing is a sandbox assumption, not a catalog fact: roughly what 8-GPU HGX servers ship with
# (24 vCPU and 192 GiB RAM per GPU). Only the ratio to GPUs matters for scheduling tests.
_DEFAULT_CPU_PER_GPU = 24
_DEFAULT_MEMORY_GIB_PER_GPU = 192
_DEFAULT_PODS = 110  # the kubelet's default --max-pods


class PoolConfigError(ValueError):
    """The pool config is malformed or names a GPU the catalog does not know."""


@dataclass(frozen=True)
class NodePool:
    name: str
    gpu: GpuSpec
    count: int
    gpus_per_node: int
    cpu: str
    memory: str
    pods: int

    def node_names(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.count)]


def _pool_from_mapping(raw: Any, index: int) -> NodePool:
    if not isinstance(raw, dict):
        raise PoolConfigError(f"pools[{index}] must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - {"name", "gpu", "count", "gpusPerNode", "cpu", "memory", "pods"}
    if unknown:
        raise PoolConfigError(f"pools[{index}]: unknown field(s) {sorted(unknown)}")
    try:
        name = str(raw["name"])
        gpu_key = str(raw["gpu"])
        count = int(raw["count"])
        gpus_per_node = int(raw["gpusPerNode"])
    except KeyError as exc:
        raise PoolConfigError(f"pools[{index}]: missing required field {exc.args[0]!r}") from exc
    if gpu_key not in GPU_CATALOG:
        raise PoolConfigError(
            f"pools[{index}] ({name}): unknown gpu {gpu_key!r}; known: {', '.join(sorted(GPU_CATALOG))}"
        )
    if count < 0 or gpus_per_node < 1:
        raise PoolConfigError(f"pools[{index}] ({name}): count must be >= 0 and gpusPerNode >= 1")
    return NodePool(
        name=name,
        gpu=GPU_CATALOG[gpu_key],
        count=count,
        gpus_per_node=gpus_per_node,
        cpu=str(raw.get("cpu", _DEFAULT_CPU_PER_GPU * gpus_per_node)),
        memory=str(raw.get("memory", f"{_DEFAULT_MEMORY_GIB_PER_GPU * gpus_per_node}Gi")),
        pods=int(raw.get("pods", _DEFAULT_PODS)),
    )


def parse_pools(text: str) -> list[NodePool]:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("pools"), list):
        raise PoolConfigError("pool config must be a mapping with a `pools:` list")
    pools = [_pool_from_mapping(raw, i) for i, raw in enumerate(doc["pools"])]
    names = [p.name for p in pools]
    if len(set(names)) != len(names):
        raise PoolConfigError(f"pool names must be unique, got {names}")
    return pools


def load_pools(path: Path | None = None) -> list[NodePool]:
    """Pools from `path`, or the packaged default (`pools.yaml` next to this module)."""
    if path is None:
        text = resources.files("mimo_sandbox").joinpath("pools.yaml").read_text()
    else:
        text = Path(path).read_text()
    return parse_pools(text)


def node_manifests(pools: Sequence[NodePool]) -> list[dict[str, Any]]:
    """One Node per simulated machine, with the labels and capacity a GPU-feature-discovery node has.

    Status (capacity/allocatable) is set at creation: kwok's node-initialize stage keeps whatever
    status.capacity it finds instead of its huge defaults.
    """
    nodes = []
    for pool in pools:
        resources_ = {
            "cpu": pool.cpu,
            "memory": pool.memory,
            "pods": str(pool.pods),
            GPU_RESOURCE: str(pool.gpus_per_node),
        }
        for name in pool.node_names():
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE},
                        "labels": {
                            "type": "kwok",
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            POOL_LABEL: pool.name,
                            LABEL_GPU_PRODUCT: pool.gpu.product_label,
                            LABEL_GPU_MEMORY: str(pool.gpu.memory_mib),
                            LABEL_GPU_COUNT: str(pool.gpus_per_node),
                            LABEL_GPU_PRESENT: "true",
                        },
                    },
                    "status": {"capacity": dict(resources_), "allocatable": dict(resources_)},
                }
            )
    return nodes
