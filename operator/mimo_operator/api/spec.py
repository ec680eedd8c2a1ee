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
from mimo_operator.models.family import KNOWN_CHECKPOINTS
from mimo_operator.models.gpus import GPU_CATALOG
from mimo_operator.models.limits import (
    DEFAULT_DOWNLOAD_RATE_MIB_PER_S,
    DEFAULT_LOAD_RATE_MIB_PER_S,
    MAX_GPU_MEMORY_UTILIZATION,
    MAX_MIN_CONCURRENCY,
    MIN_GPU_MEMORY_UTILIZATION,
    MIN_MODEL_LEN,
)

GpuType = Literal[
    "H100-80GB",
    "H100-80GB-PCIE",
    "H800-80GB",
    "H20-96GB",
    "H200-141GB",
    "B200-192GB",
    "B300-288GB",
    "A100-80GB",
    "L40S-48GB",
    "MI300X-192GB",
    "MI325X-256GB",
    "MI355X-288GB",
    "custom",
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
    """A directory on every GPU node (e.g. a local NVMe cache). With fetch: job the operator fills it
    on each node the pods may run on (one download Job per node, writing as UID 65532), labels a node
    weights.serving.mimo.dev/<key> once its copy is verified, and keeps the pods to labelled nodes."""


# Storage sizes as Kubernetes quantities, binary or decimal units (e.g. 400Gi, 1Ti).
StorageSize = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$", max_length=32)]


class CacheClaimTemplate(_Model):
    size: StorageSize
    """Capacity of the claim the operator creates; the fetcher refuses to start when it cannot hold the
    checkpoint (fp8: 313 GB)."""
    storage_class_name: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """StorageClass of the claim. Default: the cluster's default class."""
    access_modes: Annotated[
        list[Literal["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce", "ReadWriteOncePod"]],
        Field(min_length=1, max_length=4),
    ] = ["ReadWriteMany"]
    """ReadWriteMany lets the download Job and every vLLM pod on every node mount it."""
    when_deleted: Literal["Delete", "Retain"] = "Delete"
    """Delete: the claim (and the weights on it) goes with the MimoDeployment. Retain: the claim has no
    owner and stays when the MimoDeployment is deleted; a MimoDeployment of the same name adopts it
    again (no new download), and you delete it with kubectl when it is no longer wanted."""


FetchMode = Literal["job", "vllm", "none"]


class ModelCache(_Model):
    persistent_volume_claim: PvcSource | None = None
    """Weights on a PersistentVolumeClaim you own (ReadWriteMany or ReadOnlyMany for several pods)."""
    host_path: HostPathSource | None = None
    """Weights in a directory on the node."""
    volume_claim_template: CacheClaimTemplate | None = None
    """A claim the operator creates for the weights (named <name>-weights; deleted with the
    MimoDeployment unless whenDeleted: Retain)."""
    fetch: FetchMode | None = None
    """job: a download Job fetches, verifies and pins the weights before any vLLM pod starts, and vLLM
    reads them offline (with hostPath: one Job per node, and the pods only on nodes whose copy is
    complete). vllm: vLLM downloads them itself at start. none: the weights are already in
    the volume (air-gapped); model.name is their path. Default: job on a claim the operator may write
    (volumeClaimTemplate, or a persistentVolumeClaim that is not readOnly), vllm on hostPath, none on a
    read-only claim."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelCache:
        sources = [self.persistent_volume_claim, self.host_path, self.volume_claim_template]
        if sum(source is not None for source in sources) > 1:
            raise ValueError("set one of persistentVolumeClaim, hostPath and volumeClaimTemplate")
        claim = self.persistent_volume_claim
        if self.fetch == "job" and claim is not None and claim.read_only:
            raise ValueError("fetch: job cannot write to a readOnly persistentVolumeClaim")
        return self

    def fetch_mode(self) -> FetchMode:
        """Who puts the weights into this cache (see `fetch`)."""
        if self.fetch is not None:
            return self.fetch
        if self.volume_claim_template is not None:
            return "job"
        if self.persistent_volume_claim is not None:
            return "none" if self.persistent_volume_claim.read_only else "job"
        return "vllm"


class MultimodalLimits(_Model):
    """Items of each kind one prompt may carry (vLLM --limit-mm-per-prompt); multimodal models only."""

    image: Annotated[int, Field(ge=0, le=64)] | None = None
    """Images per prompt. Default: vLLM's."""
    video: Annotated[int, Field(ge=0, le=64)] | None = None
    """Videos per prompt. Default: vLLM's."""
    audio: Annotated[int, Field(ge=0, le=64)] | None = None
    """Audio clips per prompt. Default: vLLM's."""

    def text_only(self) -> bool:
        return self.image == 0 and self.video == 0 and self.audio == 0


# Known checkpoints, for the CRD's rule and the planner's refusal (models/family.py).
KNOWN_MODEL_NAMES = tuple(KNOWN_CHECKPOINTS)
KnownModelName = Literal["XiaomiMiMo/MiMo-V2-Flash", "XiaomiMiMo/MiMo-V2.5", "XiaomiMiMo/MiMo-V2.5-Pro"]
assert set(KnownModelName.__args__) == set(KNOWN_MODEL_NAMES), "KnownModelName must list the family"  # type: ignore[attr-defined]
_KNOWN_LIST = ", ".join(KNOWN_MODEL_NAMES)
_KNOWN_CEL = "[" + ", ".join(f"'{n}'" for n in KNOWN_MODEL_NAMES) + "]"


_CONFIG_FROM_NEEDS_JOB = (
    "spec.model.configFrom: checkpoint reads config.json from the weights the download Job fetched: "
    "set spec.model.cache to a volumeClaimTemplate or a writable persistentVolumeClaim (fetch: job; "
    "node-local hostPath copies are filled by one Job per node, none of which the plan may wait for); "
    "for weights already in place, give their config.json in spec.model.config"
)


class ModelSource(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": f"!has(self.name) || self.name in {_KNOWN_CEL} || has(self.copyOf)"
                    " || has(self.config) || has(self.configFrom)",
                    "message": f"spec.model.name must be a known MiMo checkpoint ({_KNOWN_LIST}); "
                    "for a copy of one in another precision set spec.model.copyOf, for a fine-tune "
                    "set spec.model.config to its config.json or spec.model.configFrom: checkpoint",
                    "fieldPath": ".name",
                    "reason": "FieldValueInvalid",
                },
                {
                    "rule": "[has(self.copyOf), has(self.config), has(self.configFrom)]"
                    ".filter(x, x).size() <= 1",
                    "message": "spec.model: set one of copyOf (a copy of a known checkpoint), config "
                    "(a fine-tune's own config.json) or configFrom (read it from the downloaded weights)",
                    "reason": "FieldValueForbidden",
                },
                {
                    "rule": "!has(self.configFrom) || (has(self.cache) && !has(self.cache.hostPath) && "
                    "(has(self.cache.fetch) ? "
                    "self.cache.fetch == 'job' : (has(self.cache.volumeClaimTemplate) || "
                    "(has(self.cache.persistentVolumeClaim) && "
                    "!(has(self.cache.persistentVolumeClaim.readOnly) && "
                    "self.cache.persistentVolumeClaim.readOnly)))))",
                    "message": _CONFIG_FROM_NEEDS_JOB,
                    "fieldPath": ".configFrom",
                    "reason": "FieldValueInvalid",
                },
            ]
        }
    )

    name: Annotated[str, Field(min_length=1, max_length=256)] = "XiaomiMiMo/MiMo-V2-Flash"
    """Hugging Face repository id of a known MiMo checkpoint (XiaomiMiMo/MiMo-V2-Flash,
    XiaomiMiMo/MiMo-V2.5, XiaomiMiMo/MiMo-V2.5-Pro), or of a fine-tune or copy together with
    config, or a path inside the cache volume together with config."""
    copy_of: KnownModelName | None = None
    """For weights that are a copy of a known checkpoint in another precision (e.g. a bf16 or int4
    copy of XiaomiMiMo/MiMo-V2-Flash under a path in the cache): the checkpoint it copies. The
    planner uses that checkpoint's architecture and spec.precision as the copy's storage."""
    config: Annotated[str, Field(min_length=2, max_length=131072)] | None = None
    """The checkpoint's config.json, as JSON text, for a model name the operator does not know (a
    fine-tune or copy of a MiMo-V2 architecture). The planner reads layers, heads, experts, context
    and quantization_config from it, and precision must match its quantization_config."""
    config_from: Literal["checkpoint"] | None = None
    """checkpoint: plan from the config.json the weights themselves carry (a fine-tune of a known
    MiMo-V2 architecture), read by the download Job; needs a cache the operator fills (fetch: job).
    Nothing is planned and no vLLM pod is created before the download completed; status.weights.config
    shows what the planner read."""
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
    download_rate_mi_bps: Annotated[int, Field(ge=1, le=100000)] = DEFAULT_DOWNLOAD_RATE_MIB_PER_S
    """Download rate (MiB/s) the cold-start estimate in status.plan.coldStart assumes; set it to the
    status.weights.bytesPerSecond a download in this cluster reached. It limits nothing."""
    multimodal_limits: MultimodalLimits | None = None
    """MiMo-V2.5 only: images, videos and audio clips per prompt. All three 0 serves it as text only,
    and vLLM then skips loading the vision and audio encoders."""

    @model_validator(mode="after")
    def _copy_or_config(self) -> ModelSource:
        if sum(x is not None for x in (self.copy_of, self.config, self.config_from)) > 1:
            raise ValueError("set one of copyOf, config and configFrom")
        cache = self.cache
        if self.config_from is not None and (
            cache is None or cache.fetch_mode() != "job" or cache.host_path is not None
        ):
            raise ValueError(_CONFIG_FROM_NEEDS_JOB)
        return self


class GpuSelector(_Model):
    type: GpuType = "H100-80GB"
    """GPU catalog key (see `mimo-operator gpus`), or custom with memoryGiB and productLabel."""
    per_node: Annotated[int, Field(ge=1, le=16)] | None = None
    """GPUs per node. Default: the catalog's value for the GPU type."""
    memory_gi_b: Annotated[float, Field(gt=0, le=1024)] | None = None
    """Memory of a custom GPU as its driver reports it, in GiB."""
    product_label: Annotated[str, Field(max_length=63)] | None = None
    """Node label value of the GPU product (nvidia.com/gpu.product, or amd.com/gpu.product-name for AMD
    GPUs) of the nodes to run on. Default: the catalog's value."""


class ContextSpec(_Model):
    max_model_len: Annotated[int, Field(ge=MIN_MODEL_LEN, le=1048576)] | Literal["auto"] = "auto"
    """Longest request in tokens (4096 up to the model's max_position_embeddings: 262144 for
    MiMo-V2-Flash, 1048576 for MiMo-V2.5 and V2.5-Pro), or auto: the largest that fits, up to 131072
    (the maximum the public vLLM recipe states for MiMo-V2-Flash; longer contexts are marked
    unvalidated)."""
    min_concurrency: Annotated[int, Field(ge=1, le=MAX_MIN_CONCURRENCY)] = 1
    """Max-length requests that must fit in the KV cache at once (1 to 4096; at most 1024 per data
    parallel rank, vLLM's default max-num-seqs)."""


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
    mtp: Literal["auto", "on", "off"] = "off"
    """Multi-token prediction with the model's own MTP block (opt-in: no public vLLM run of this model
    with MTP exists yet). auto: on unless pipeline parallel."""


LabelName = Annotated[str, Field(min_length=1, max_length=317)]


class LabelSelectorRequirement(_Model):
    key: LabelName
    """The label key the requirement applies to."""
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    """How the label's value relates to values."""
    values: Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=64)] = []
    """Label values; empty with Exists and DoesNotExist."""


class LabelSelector(_Model):
    """A meta/v1 LabelSelector; empty selects everything in its scope."""

    match_labels: dict[str, Annotated[str, Field(max_length=63)]] = {}
    """Labels that must all be present with these values."""
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=16)] = []
    """Requirements that must all hold."""


Cidr = Annotated[str, Field(pattern=r"^[0-9a-fA-F:.]+/[0-9]{1,3}$", max_length=64)]


class IpBlock(_Model):
    cidr: Cidr
    """Addresses allowed, e.g. 192.0.2.0/24."""
    except_: Annotated[list[Cidr], Field(max_length=16, alias="except")] = []
    """Ranges inside cidr that are not allowed."""


class ApiClient(_Model):
    """A networking/v1 NetworkPolicyPeer: pods by namespace and/or pod labels, or an IP block."""

    namespace_selector: LabelSelector | None = None
    """Namespaces by label (`kubernetes.io/metadata.name: team-a` names one); with podSelector, those
    pods in those namespaces."""
    pod_selector: LabelSelector | None = None
    """Pods by label, in this deployment's namespace unless namespaceSelector is set too."""
    ip_block: IpBlock | None = None
    """Addresses outside the cluster network (e.g. a load balancer's); not with the selectors."""

    @model_validator(mode="after")
    def _one_kind(self) -> ApiClient:
        selectors = self.namespace_selector is not None or self.pod_selector is not None
        if self.ip_block is not None and selectors:
            raise ValueError("an apiClients entry has ipBlock or selectors, not both")
        if self.ip_block is None and not selectors:
            raise ValueError("an apiClients entry needs namespaceSelector, podSelector or ipBlock")
        return self

    def peer(self) -> dict[str, Any]:
        """The NetworkPolicyPeer as the API server stores it (an empty selector stays `{}`)."""
        return self.model_dump(by_alias=True, exclude_defaults=True)


class ServingSpec(_Model):
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """vLLM image. Default: the operator's configured image (vllm/vllm-openai at the pinned version)."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret holding the key clients must send as a Bearer token to /v1."""
    extra_args: Annotated[list[Annotated[str, Field(max_length=1024)]], Field(max_length=64)] = []
    """Extra vllm serve arguments, appended last. Flags the operator sets itself are refused."""
    env: Annotated[list[dict[str, Any]], Field(max_length=64)] = []
    """Extra environment variables (core/v1 EnvVar) for the vLLM container."""
    api_clients: Annotated[list[ApiClient], Field(max_length=16)] = []
    """Who else may reach the API port (8000) through the deployment's NetworkPolicy, beside the
    installer's vllmNetworkPolicy.apiFrom and the route's Gateway (NetworkPolicyPeers)."""


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
    load_rate_mi_bps: Annotated[int, Field(ge=50, le=100000)] = DEFAULT_LOAD_RATE_MIB_PER_S
    """Assumed weight loading rate per pod (MiB/s) for the auto budget; raise it for local NVMe."""


class MimoDeploymentSpec(_Model):
    model: ModelSource = ModelSource()
    """Which weights to serve and where they live."""
    precision: Literal["bf16", "fp8", "int4"] = "fp8"
    """Weight precision. fp8 is the official checkpoint; bf16 and int4 need a copy you supply."""
    kv_cache_dtype: Literal["auto", "fp8"] = "auto"
    """KV cache element type. auto follows the model (bf16); fp8 halves KV memory (opt-in: it needs
    SM 8.9 or newer and vLLM's Triton DiffKV attention backend, which the operator then selects)."""
    gpu: GpuSelector = GpuSelector()
    """GPU kind the replicas run on."""
    context: ContextSpec = ContextSpec()
    """Context length and concurrency the KV cache must hold."""
    parallelism: ParallelismSpec = ParallelismSpec()
    """Optional overrides of the planned parallel sizes; each one set wins or is rejected with the reason."""
    gpu_memory_utilization: Annotated[
        float, Field(gt=MIN_GPU_MEMORY_UTILIZATION, le=MAX_GPU_MEMORY_UTILIZATION)
    ] = 0.90
    """Fraction of each GPU's memory vLLM may use (above 0.5, at most 0.98; 0.9 as in the public vLLM
    recipe)."""
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
