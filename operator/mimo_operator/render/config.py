"""What the renderers need from the operator's configuration, as a plain value (no env, no files)."""

from __future__ import annotations

from dataclasses import dataclass

# The vLLM release the operator's command lines are written and tested for: MiMo-V2-Flash runs from
# 0.14, its reasoning/tool parsers from 0.20, MTP from 0.22; `mimo` parsers are registered in 0.33
# (model-facts.md). tests/vllm_cli checks every rendered command with this version's own parser.
VLLM_VERSION = "0.33.0"
DEFAULT_VLLM_IMAGE = f"vllm/vllm-openai:v{VLLM_VERSION}"


@dataclass(frozen=True)
class RenderConfig:
    vllm_image: str = DEFAULT_VLLM_IMAGE
    image_pull_policy: str = "IfNotPresent"
    # Seconds vLLM needs besides reading weights: process start, NCCL setup, torch.compile and CUDA
    # graph capture (several minutes for a 48-layer MoE on first start).
    engine_init_seconds: int = 420
    termination_grace_seconds: int = 120
    model_mount_path: str = "/models"
    # Optional APIs found in the cluster at reconcile time (discovery), not settings: children of
    # those kinds are rendered only when their CRDs are installed.
    keda_available: bool = False
    pod_monitor_available: bool = False
    gateway_api_available: bool = False  # gateway.networking.k8s.io/v1 httproutes
    inference_pool_available: bool = False  # inference.networking.k8s.io/v1 inferencepools
    # Prometheus that KEDA's trigger queries (operator setting `prometheus_address`).
    prometheus_address: str = "http://prometheus-operated.monitoring.svc:9090"
