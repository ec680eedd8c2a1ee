"""What the renderers need from the operator's configuration, as a plain value (no env, no files)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mimo_operator import __version__
from mimo_operator.api import constants
from mimo_operator.models.limits import DEFAULT_ENGINE_START_SECONDS

# The vLLM release the operator's command lines are written and tested for: MiMo-V2-Flash runs from
# 0.14, its reasoning/tool parsers from 0.20, MTP from 0.22; `mimo` parsers are registered in 0.33
# (vllm/reasoning/__init__.py, vllm/tool_parsers/__init__.py). tests/vllm_cli checks every rendered
# command with this version's own parser.
VLLM_VERSION = "0.33.0"
DEFAULT_VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"
# vLLM publishes its ROCm build as a separate image with the same tags (docs.vllm.ai, "Using Docker":
# pre-built images for AMD GPUs, Docker Hub vllm/vllm-openai-rocm); the CUDA image cannot drive AMD GPUs.
DEFAULT_ROCM_VLLM_IMAGE = f"vllm/vllm-openai-rocm:v{VLLM_VERSION}"
# The environment the public vLLM recipe sets for this model on AMD (vllm-project/recipes,
# MiMo/MiMo-V2-Flash.md, "AMD GPU Support": `export VLLM_ROCM_USE_AITER=0`): the AITER kernels are
# not used for this model, the Triton DiffKV path is.
ROCM_ENV = {"VLLM_ROCM_USE_AITER": "0"}
# Who may reach a deployment's API port by default (NetworkPolicyPeer objects, networking.k8s.io/v1):
# every pod of the deployment's own namespace, and the namespace the default Prometheus runs in
# (`monitoring`, as in prometheus_address below; vLLM serves /metrics on the API port).
DEFAULT_API_PEERS: tuple[Mapping[str, Any], ...] = (
    {"podSelector": {}},
    {"namespaceSelector": {"matchLabels": {constants.LABEL_NAMESPACE_NAME: "monitoring"}}},
)


@dataclass(frozen=True)
class RenderConfig:
    vllm_image: str = DEFAULT_VLLM_IMAGE
    rocm_vllm_image: str = DEFAULT_ROCM_VLLM_IMAGE  # used when the GPU is an AMD one

    def image_for(self, vendor: str) -> str:
        """The vLLM image for a GPU vendor: the CUDA build for NVIDIA, the ROCm build for AMD."""
        return self.rocm_vllm_image if vendor == "amd" else self.vllm_image

    image_pull_policy: str = "IfNotPresent"
    # Seconds vLLM needs besides reading weights (models/limits.py says what they cover).
    engine_init_seconds: int = DEFAULT_ENGINE_START_SECONDS
    termination_grace_seconds: int = 120
    model_mount_path: str = "/models"
    # The image the weights download Job runs `python -m mimo_operator.fetcher` in: the operator's own
    # (the chart's image.repository at its appVersion).
    fetcher_image: str = f"mimo-operator:{__version__}"
    # Seconds without a byte before the fetcher gives up as stalled (issue 14: "no progress for N minutes").
    fetch_stall_seconds: int = 600
    # How often a deployment with a node-local weights cache lists its nodes again, so a node that
    # joined the pool gets its copy without waiting for the resync (one LIST of nodes each time).
    node_recheck_seconds: float = 300.0
    # Optional APIs found in the cluster at reconcile time (discovery), not settings: children of
    # those kinds are rendered only when their CRDs are installed.
    keda_available: bool = False
    pod_monitor_available: bool = False
    gateway_api_available: bool = False  # gateway.networking.k8s.io/v1 httproutes
    inference_pool_available: bool = False  # inference.networking.k8s.io/v1 inferencepools
    # Prometheus that KEDA's trigger queries (operator setting `prometheus_address`).
    prometheus_address: str = "http://prometheus-operated.monitoring.svc:9090"
    # A NetworkPolicy per deployment (operator settings network_policy, network_policy_api_from): the
    # peers allowed to the API port, besides the route's Gateway namespace; None renders no policy.
    network_policy_api_from: tuple[Mapping[str, Any], ...] | None = DEFAULT_API_PEERS
    # The operator's own pods as a NetworkPolicyPeer (the chart sets it): admitted to a download pod's
    # progress port so status shows percent and ETA while the Job runs. None: no such rule.
    operator_peer: Mapping[str, Any] | None = None
    # Run vLLM as this uid with a read-only root filesystem (render/security.py); None: the image's user.
    vllm_run_as_user: int | None = None
