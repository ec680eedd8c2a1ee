"""The MimoDeployment status: phase, conditions, the plan as the planner chose it, and replica counts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

Phase = Literal["Pending", "Downloading", "Deploying", "Ready", "Degraded", "Failed"]


class _Status(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_attribute_docstrings=True
    )


class Condition(_Status):
    type: str
    """Planned, Ready, Progressing, Degraded or ModelPinned."""
    status: Literal["True", "False", "Unknown"]
    """True, False or Unknown."""
    reason: str
    """CamelCase reason."""
    message: str = ""
    """What happened, with the numbers a person needs."""
    last_transition_time: str
    """RFC 3339 time the status last changed."""
    observed_generation: int | None = None
    """The metadata.generation the condition was computed from."""


class ColdStartStatus(_Status):
    """How long a replica takes to start, estimated before anything runs (README, "Model weights")."""

    fetched_by: Literal["job", "vllm", "none"]
    """Who downloads the weights: a Job once per cache, vLLM in each pod, or nobody."""
    download_gi_b: float
    """Checkpoint GiB fetched before the first pod can load."""
    download_rate_mi_bps: int
    """The rate assumed (spec.model.downloadRateMiBps)."""
    download_seconds: int
    """Download at that rate."""
    load_seconds: int
    """Weights per pod at spec.probes.loadRateMiBps."""
    engine_start_seconds: int
    """Process start, NCCL, torch.compile and CUDA graphs (the operator's engine_init_seconds)."""
    first_start_seconds: int
    """From apply to the first replica serving, nothing cached yet."""
    new_pod_seconds: int
    """A restart, reschedule or scale-up afterwards."""
    summary: str
    """The estimate in one sentence."""


class PlanStatus(_Status):
    gpus_per_replica: int
    """GPUs one model replica uses."""
    gpus_per_pod: int
    """GPUs each vLLM pod requests."""
    nodes_per_replica: int
    """Nodes (pods) one replica spans; above 1, pod 0 serves and the others run headless."""
    tensor_parallel: int
    """--tensor-parallel-size."""
    pipeline_parallel: int
    """--pipeline-parallel-size (one stage per node)."""
    data_parallel: int
    """--data-parallel-size inside one replica."""
    expert_parallel: bool
    """--enable-expert-parallel."""
    mtp: bool
    """Multi-token-prediction speculative decoding on."""
    max_model_len: int
    """--max-model-len: the longest request in tokens."""
    weights_gi_b_per_gpu: float
    """Weights on the most loaded GPU, GiB."""
    reserved_gi_b_per_gpu: float
    """Activations, CUDA graphs and runtime kept outside the KV cache, GiB."""
    kv_cache_gi_b_per_gpu: float
    """KV cache pool per GPU, GiB."""
    kv_cache_tokens: int
    """Tokens the KV cache of one replica holds (full-attention layers; sliding ones keep a window)."""
    max_concurrent_at_max_len: int
    """Requests of max-model-len tokens that fit in the KV cache at once."""
    attention_backend: str | None = None
    """vLLM attention backend for this model on this GPU (FLASH_ATTN_DIFFKV or TRITON_ATTN_DIFFKV)."""
    attention_backend_flag: bool = False
    """Whether the operator passes --attention-backend because vLLM's default cannot run this setup."""
    vllm_log_kv_cache_tokens: int | None = None
    """What vLLM logs at start-up as "GPU KV cache size: N tokens" (summed over data parallel ranks)."""
    vllm_log_max_concurrency: float | None = None
    """What vLLM logs at start-up as "Maximum concurrency for L tokens per request: X" (per rank)."""
    max_concurrent_prompts_at_max_len: int | None = None
    """Max-length requests admitted when each arrives as a whole max-length prompt."""
    validation: str = ""
    """validated by <public source>, or unvalidated: what differs from every public run."""
    notes: list[str] = []
    """What the planner wants a person to know: warnings, backend choice, missing checkpoints."""
    summary: str
    """One line a person reads in kubectl get -o wide."""
    hash: str
    """Changes only when the rendered workload must change."""
    cold_start: ColdStartStatus | None = None
    """How long the first start and a new pod take: download, load, engine start."""


class WeightsStatus(_Status):
    location: str
    """Where the weights live: pvc/<claim>:<directory>."""
    revision: str
    """The revision asked for (spec.model.revision, or main)."""
    sha: str | None = None
    """The commit the revision resolved to, as the fetcher pinned and verified it."""
    bytes_done: int | None = None
    """Bytes fetched and present so far."""
    bytes_total: int | None = None
    """Size of the checkpoint at that commit."""
    bytes_per_second: int | None = None
    """Recent download rate."""
    progress: str | None = None
    """Percent done (and time left), for kubectl get, from the fetcher's last report (e.g. "100%", or
    "37%" where a failed download stopped)."""
    job: str | None = None
    """The download Job."""
    config: str | None = None
    """spec.model.configFrom: checkpoint: what the planner read of the config.json in these weights
    (the keys it uses, as JSON), reported by the download Job named in `job`."""


class AutoscalingStatus(_Status):
    """The scaling policy derived from the start-up budget (README, "Autoscaling and monitoring")."""

    startup_budget_seconds: int
    """How long a new replica may take to load (the startupProbe's budget)."""
    scale_up_replicas: int
    """At most this many replicas are added ..."""
    scale_up_period_seconds: int
    """... within any window this long: the start-up budget, at most 1800 s (the HPA's limit)."""
    scale_up_stabilization_seconds: int
    """The metric must stay above target this long before a replica is added."""
    polling_seconds: int | None = None
    """KEDA: how often the trigger is read."""
    cooldown_seconds: int | None = None
    """KEDA scale-to-zero: calm before going to zero replicas."""
    idle_replicas: int | None = None
    """KEDA scale-to-zero: 0."""
    summary: str
    """The policy in one sentence."""


class MimoDeploymentStatus(_Status):
    observed_generation: int | None = None
    """The metadata.generation this status describes."""
    phase: Phase | None = None
    """Pending, Downloading (the weights), Deploying, Ready, Degraded or Failed."""
    conditions: list[Condition] = []
    """Planned, Ready, Progressing, Degraded and ModelPinned, each with reason and message."""
    plan: PlanStatus | None = None
    """What the planner chose, with the numbers behind it."""
    replicas: int | None = None
    """Replicas desired (what the scale subresource reports)."""
    ready_replicas: int | None = None
    """Replicas whose every pod is ready."""
    ready: str | None = None
    """readyReplicas/replicas, for kubectl get."""
    selector: str | None = None
    """Label selector of the leader pods, for the scale subresource and autoscalers."""
    endpoint: str | None = None
    """In-cluster URL of the OpenAI-compatible API."""
    weights: WeightsStatus | None = None
    """The weights cache, when the operator fetches the weights (spec.model.cache.fetch: job)."""
    autoscaling: AutoscalingStatus | None = None
    """The scaling policy derived from the start-up budget, when spec.autoscaling is set."""
