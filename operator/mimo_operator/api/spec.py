"""The MimoDeployment spec as pydantic models: the single source of truth for the CRD schema.

Field descriptions become `kubectl explain` text. Defaults live here, applied by the operator when it
parses a resource, and deliberately not in the CRD schema: the API server then never writes fields
the user did not, so GitOps tools see no drift.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from mimo_operator.api.flags import owned_flags_in
from mimo_operator.models.gpus import GPU_CATALOG

GpuType = Literal[
    "H100-80GB", "H100-80GB-PCIE", "H200-141GB", "B200-192GB", "A100-80GB", "L40S-48GB", "custom"
]
assert set(GpuType.__args__) == {*GPU_CATALOG, "custom"}, "GpuType must list the catalog"  # type: ignore[attr-defined]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=True,
    )


class SecretKeyRef(_Model):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of a Secret in the MimoDeployment's namespace."""
    key: Annotated[str, Field(min_length=1, max_length=253)]
    """Key inside the Secret."""


class PvcSource(_Model):
    claim_name: Annotated[str, Field(min_length=1, max_length=253)]
    """An existing PersistentVolumeClaim holding (or receiving) the weights."""
    read_only: bool = False
    """Mount read-only; the weights must already be there."""


class HostPathSource(_Model):
    path: Annotated[str, Field(min_length=1, max_length=4096, pattern=r"^/")]
    """A directory on every GPU node (e.g. a local NVMe cache)."""


class ModelCache(_Model):
    persistent_volume_claim: PvcSource | None = None
    """Weights on a PersistentVolumeClaim (ReadWriteMany or ReadOnlyMany for several pods)."""
    host_path: HostPathSource | None = None
    """Weights in a directory on the node."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelCache:
        if self.persistent_volume_claim is not None and self.host_path is not None:
            raise ValueError("set one of persistentVolumeClaim and hostPath, not both")
        return self


class ModelSource(_Model):
    name: Annotated[str, Field(min_length=1, max_length=256)] = "XiaomiMiMo/MiMo-V2-Flash"
    """Hugging Face repository id, or a path inside the cache volume."""
    revision: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._/-]+$")] | None = None
    """Commit to pin. Unpinned deployments get a warning condition: weights can change under you."""
    served_name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._/-]+$")] | None = (
        None
    )
    """Model name clients send in requests. Default: metadata.name."""
    cache: ModelCache | None = None
    """Where the weights live. Without it they are downloaded into an emptyDir on every start."""
    token_secret_ref: SecretKeyRef | None = None
    """Hugging Face token for gated or private repositories (HF_TOKEN)."""


class GpuSelector(_Model):
    type: GpuType = "H100-80GB"
    """GPU catalog key (see `mimo-operator gpus`), or custom with memoryGiB and productLabel."""
    per_node: Annotated[int, Field(ge=1, le=16)] | None = None
    """GPUs per node. Default: the catalog's value for the GPU type."""
    memory_gi_b: Annotated[float, Field(gt=0, le=1024)] | None = None
    """Memory of a custom GPU as its driver reports it, in GiB."""
    product_label: Annotated[str, Field(max_length=63)] | None = None
    """nvidia.com/gpu.product value of the nodes to run on. Default: the catalog's label."""


class ContextSpec(_Model):
    max_model_len: Annotated[int, Field(ge=1, le=262144)] | Literal["auto"] = "auto"
    """Longest request in tokens (at most 262144), or auto: the largest that fits."""
    min_concurrency: Annotated[int, Field(ge=1, le=4096)] = 1
    """Max-length requests that must fit in the KV cache at once."""


class ParallelismSpec(_Model):
    tensor: Literal[1, 2, 4, 8] | None = None
    """Tensor parallel size; must divide the 64 attention heads. Default: planned."""
    pipeline: Annotated[int, Field(ge=1, le=16)] | None = None
    """Pipeline parallel size (one stage per node). 1 forbids multi-node replicas. Default: planned."""
    data: Annotated[int, Field(ge=1, le=64)] | None = None
    """Data parallel size inside one replica. Default: planned."""
    expert: bool | None = None
    """Expert parallel on or off. Default: on exactly when data parallel > 1."""
    strategy: Literal["latency", "throughput"] = "latency"
    """latency: fewest GPUs per replica; throughput: allow data + expert parallel when it
    raises tokens/s per GPU."""


class AutoscalingSpec(_Model):
    min_replicas: Annotated[int, Field(ge=1, le=1000)] = 1
    """Fewest replicas the autoscaler keeps."""
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 4
    """Most replicas the autoscaler may create."""
    metric: Literal["queueDepth", "kvCacheUsage", "runningRequests"] = "queueDepth"
    """queueDepth: vllm:num_requests_waiting; kvCacheUsage: vllm:kv_cache_usage_perc;
    runningRequests: vllm:num_requests_running."""
    target: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?m?$", max_length=16)] = "5"
    """Per-replica average of the metric to aim for (a Kubernetes quantity, e.g. 5 or 800m)."""
    engine: Literal["hpa", "keda"] = "hpa"
    """hpa: an autoscaling/v2 HorizontalPodAutoscaler; keda: a KEDA ScaledObject (needs KEDA installed)."""
    scale_down_stabilization_seconds: Annotated[int, Field(ge=0, le=3600)] = 900
    """How long the metric must stay low before a replica is removed (a replica takes minutes to return).
    At most 3600, the HorizontalPodAutoscaler's own limit."""
    scale_up_replicas_per_startup: Annotated[int, Field(ge=1, le=1000)] = 1
    """Replicas the autoscaler may add within one start-up window (the plan's start-up budget): while
    they load, the queue stays high, and more are not ordered until they have had time to serve."""
    scale_to_zero: bool = False
    """KEDA only: idle deployments go to 0 replicas (idleReplicaCount 0) after a cooldown of one start-up
    budget. The first request after idle then waits a full start (many minutes) or times out."""

    @model_validator(mode="after")
    def _bounds_ordered(self) -> AutoscalingSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"minReplicas {self.min_replicas} exceeds maxReplicas {self.max_replicas}")
        if self.scale_to_zero and self.engine != "keda":
            raise ValueError("scaleToZero needs engine: keda (a HorizontalPodAutoscaler never goes below 1)")
        return self


class GatewayRef(_Model):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Name of the Gateway (gateway.networking.k8s.io/v1) the route attaches to."""
    namespace: Annotated[str, Field(min_length=1, max_length=63)] | None = None
    """Namespace of the Gateway. Default: the MimoDeployment's (its listeners must allow this namespace)."""
    section_name: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """One listener of the Gateway. Default: every listener that accepts the route."""


class EndpointPickerRef(_Model):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    """Service of the Gateway API Inference Extension's endpoint picker (EPP), in this namespace."""
    port: Annotated[int, Field(ge=1, le=65535)] = 9002
    """Its ext-proc gRPC port (9002 in the extension's own manifests)."""


class RouteSpec(_Model):
    gateway: GatewayRef
    """The parent Gateway."""
    endpoint_picker: EndpointPickerRef | None = None
    """When the cluster serves InferencePool (inference.networking.k8s.io/v1), route through a pool of
    the serving pods (leaders) that this endpoint picker routes by KV cache and queue. Without the API,
    the route goes to the API Service."""
    hostnames: Annotated[list[Annotated[str, Field(min_length=1, max_length=253)]], Field(max_length=16)] = []
    """Host names the route answers (HTTPRoute spec.hostnames). Default: whatever the Gateway accepts."""
    request_timeout_seconds: Annotated[int, Field(ge=10, le=86400)] | Literal["auto"] = "auto"
    """Gateway timeout of one request. auto: the time the plan's slowest per-request decode speed takes to
    write max-model-len tokens, between 300 s and 3600 s (README, "Autoscaling and monitoring")."""


class ThinkingSpec(_Model):
    default: bool = False
    """Server default for chat_template_kwargs.enable_thinking; each request may override it."""


class SpeculativeDecodingSpec(_Model):
    mtp: Literal["auto", "on", "off"] = "auto"
    """Multi-token prediction with the model's own MTP block. auto: on unless pipeline parallel."""


class ServingSpec(_Model):
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """vLLM image. Default: the operator's configured image (vllm/vllm-openai at the pinned version)."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret holding the key clients must send as a Bearer token to /v1."""
    extra_args: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=64)] = []
    """Extra vllm serve arguments, appended last. Flags the operator sets itself are refused."""
    env: Annotated[list[dict[str, Any]], Field(max_length=64)] = []
    """Extra environment variables (core/v1 EnvVar) for the vLLM container."""


class PlacementSpec(_Model):
    node_selector: dict[str, str] = {}
    """Extra node labels to require, beside the GPU product label."""
    tolerations: list[dict[str, Any]] = []
    """core/v1 Tolerations, e.g. for tainted GPU nodes."""
    affinity: dict[str, Any] = {}
    """core/v1 Affinity; merged with the operator's anti-affinity that spreads pods over nodes."""
    priority_class_name: Annotated[str, Field(max_length=253)] = ""
    """PriorityClass for the vLLM pods."""


Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$", max_length=32)]


class ResourcesSpec(_Model):
    cpu: Quantity = "32"
    """CPU request and limit of each vLLM pod."""
    memory: Quantity = "512Gi"
    """Memory request and limit of each vLLM pod (weights pass through host memory while loading)."""
    shared_memory: Quantity = "20Gi"
    """Size of /dev/shm (a memory emptyDir) used by NCCL and vLLM's workers."""


class ProbesSpec(_Model):
    startup_budget_seconds: Annotated[int, Field(ge=60, le=86400)] | Literal["auto"] = "auto"
    """How long a pod may take to load weights before it is restarted. auto: from weight bytes per pod."""
    load_rate_mi_bps: Annotated[int, Field(ge=50, le=100000)] = 400
    """Assumed weight loading rate per pod (MiB/s) for the auto budget; raise it for local NVMe."""


class MimoDeploymentSpec(_Model):
    model: ModelSource = ModelSource()
    """Which weights to serve and where they live."""
    precision: Literal["bf16", "fp8", "int4"] = "fp8"
    """Weight precision. fp8 is the official checkpoint; bf16 and int4 need a copy you supply."""
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    """KV cache element type. auto follows the model (bf16); fp8 halves KV memory (opt-in)."""
    gpu: GpuSelector = GpuSelector()
    """GPU kind the replicas run on."""
    context: ContextSpec = ContextSpec()
    """Context length and concurrency the KV cache must hold."""
    parallelism: ParallelismSpec = ParallelismSpec()
    """Optional overrides of the planned parallel sizes; each one set wins or is rejected with the reason."""
    gpu_memory_utilization: Annotated[float, Field(gt=0.5, le=0.98)] = 0.90
    """Fraction of each GPU's memory vLLM may use."""
    replicas: Annotated[int, Field(ge=0, le=1000)] = 1
    """Model instances. With autoscaling the autoscaler writes it (scale subresource) and the
    operator clamps it to [minReplicas, maxReplicas]."""
    autoscaling: AutoscalingSpec | None = None
    """Scale replicas on vLLM's own metrics."""
    route: RouteSpec | None = None
    """A Gateway API HTTPRoute to the API Service, created when the cluster serves the Gateway API."""
    thinking: ThinkingSpec = ThinkingSpec()
    """Reasoning (thinking) mode default."""
    speculative_decoding: SpeculativeDecodingSpec = SpeculativeDecodingSpec()
    """Multi-token-prediction speculative decoding."""
    serving: ServingSpec = ServingSpec()
    """The vLLM server: image, API key, extra arguments and environment."""
    placement: PlacementSpec = PlacementSpec()
    """Where pods may run, beyond the GPU type."""
    resources: ResourcesSpec = ResourcesSpec()
    """CPU, memory and shared memory of each vLLM pod."""
    probes: ProbesSpec = ProbesSpec()
    """Health probe budgets."""

    def effective_replicas(self) -> int:
        """Replicas to run: spec.replicas, clamped to the autoscaling bounds when autoscaling is on."""
        if self.autoscaling is None:
            return self.replicas
        if self.autoscaling.scale_to_zero and self.replicas == 0:
            return 0  # KEDA idled it (idleReplicaCount 0)
        return max(self.autoscaling.min_replicas, min(self.autoscaling.max_replicas, self.replicas))

    def owned_flags_in_extra_args(self) -> list[str]:
        return owned_flags_in(self.serving.extra_args)
