"""Inputs and outputs of the planner: what a person asks for, and the plan (or the reasons it cannot be)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mimo_operator.models.gpus import GpuSpec
from mimo_operator.models.profile import KvCacheDtype, Precision

Strategy = Literal["latency", "throughput"]
MaxModelLen = int | Literal["auto"]

# vLLM `--gpu-memory-utilization` default is 0.92 (vllm/config/cache.py in 0.33); the operator
# defaults to 0.90, the value the public vLLM recipe for this model uses (vllm-project/recipes,
# MiMo/MiMo-V2-Flash.md: "--gpu-memory-utilization 0.9"), which also leaves headroom for NCCL and
# allocator fragmentation on multi-GPU replicas.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.90


@dataclass(frozen=True)
class ParallelismOverrides:
    """Sizes the user fixed; None leaves the choice to the planner."""

    tensor: int | None = None
    pipeline: int | None = None
    data: int | None = None
    expert: bool | None = None

    def describe(self) -> str:
        fixed = [f"{name}={value}" for name, value in vars(self).items() if value is not None]
        return ", ".join(fixed) or "none"


@dataclass(frozen=True)
class PlanRequest:
    precision: Precision
    gpu: GpuSpec
    gpus_per_node: int
    kv_cache_dtype: KvCacheDtype = "auto"
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    max_model_len: MaxModelLen = "auto"
    min_concurrency: int = 1
    overrides: ParallelismOverrides = field(default_factory=ParallelismOverrides)
    strategy: Strategy = "latency"
    # MTP is opt-in: the public vLLM recipe lists "Supports MTP" as TODO and no public vLLM run of
    # this model with MTP exists. None = auto (on unless pipeline parallel).
    mtp: bool | None = False
    hybrid_kv_cache: bool = True  # False when vLLM's hybrid KV cache manager is switched off


@dataclass(frozen=True)
class Layout:
    """One way to split a replica across GPUs."""

    tensor: int
    pipeline: int
    data: int
    expert: bool

    @property
    def gpus(self) -> int:
        return self.tensor * self.pipeline * self.data

    def describe(self) -> str:
        """Short name such as `TP4 x PP2` or `TP4 x DP2 +EP`."""
        name = f"TP{self.tensor}"
        if self.pipeline > 1:
            name += f" x PP{self.pipeline}"
        if self.data > 1:
            name += f" x DP{self.data}"
        return name + (" +EP" if self.expert else "")


@dataclass(frozen=True)
class Rejected:
    """An alternative the planner considered and why it was not chosen."""

    layout: str
    reason: str


@dataclass(frozen=True)
class Plan:
    precision: Precision
    gpu: str
    gpus_per_replica: int
    gpus_per_pod: int
    nodes_per_replica: int
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int
    expert_parallel: bool
    mtp: bool
    kv_cache_dtype: KvCacheDtype
    hybrid_kv_cache: bool
    gpu_memory_utilization: float
    max_model_len: int
    budget_gib_per_gpu: float
    weights_gib_per_gpu: float
    reserved_gib_per_gpu: float
    kv_cache_gib_per_gpu: float
    kv_bytes_per_token_per_gpu: int
    kv_cache_tokens: int
    max_concurrent_at_max_len: int
    checkpoint_gib: float
    weights_gib_per_pod: float
    est_decode_tokens_per_s_per_gpu: float | None
    summary: str
    rejected: tuple[Rejected, ...] = ()
    notes: tuple[str, ...] = ()
    # How vLLM will run the attention (planner/attention.py); flag = pass --attention-backend.
    gpu_vendor: str = "nvidia"  # decides the image, the device resource and the node label
    attention_backend: str | None = None
    attention_backend_flag: bool = False
    # "validated by <source>" or "unvalidated: <what differs>" (planner/validation.py).
    validated: bool = False
    validation: str = ""
    # The two figures vLLM logs at start-up ("GPU KV cache size: N tokens", "Maximum concurrency
    # for L tokens per request: X"), per replica, and what a request arriving as a max-length
    # prompt meets (planner/vllm_kv.py).
    vllm_log_kv_cache_tokens: int = 0
    vllm_log_max_concurrency: float = 0.0
    max_concurrent_prompts_at_max_len: int = 0
    kv_pool_bytes_per_stage: tuple[int, ...] = ()  # KV pool of one GPU of each pipeline stage
    explain: tuple[tuple[str, str], ...] = ()  # (heading, line) pairs behind `plan --explain`


@dataclass(frozen=True)
class PlanError:
    """A request no layout can serve. `message` states the numbers a person needs to fix it."""

    reason: str  # CamelCase, used as the condition reason
    message: str
    rejected: tuple[Rejected, ...] = ()
