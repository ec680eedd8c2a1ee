"""From a MimoDeployment spec to the planner's request: the one place spec fields meet planner inputs."""

from __future__ import annotations

from dataclasses import replace

from mimo_operator.api.spec import MimoDeploymentSpec
from mimo_operator.models.family import ResolvedModel, UnknownModel, precision_problem, resolve_model
from mimo_operator.models.gpus import GPU_CATALOG, GpuSpec, custom_gpu
from mimo_operator.planner import ParallelismOverrides, Plan, PlanError, PlanRequest, plan

# Either flag makes vLLM store every layer's full KV: vLLM 0.33.0 vllm/config/vllm.py turns the hybrid
# KV cache manager off on the first, and on a `--kv-transfer-config` whose connector does not support it.
HYBRID_KV_OFF_FLAGS = ("--disable-hybrid-kv-cache-manager", "--kv-transfer-config")


def gpu_for(spec: MimoDeploymentSpec) -> GpuSpec | PlanError:
    if spec.gpu.type == "custom":
        if spec.gpu.memory_gi_b is None:
            return PlanError("CustomGpuNeedsMemory", "spec.gpu.type custom needs spec.gpu.memoryGiB")
        return custom_gpu(spec.gpu.memory_gi_b, spec.gpu.per_node or 8)
    return GPU_CATALOG[spec.gpu.type]


# spec.speculativeDecoding.mtp and `plan --mtp`: auto lets the planner decide.
MTP_SETTING: dict[str, bool | None] = {"auto": None, "on": True, "off": False}


def plan_request_for(spec: MimoDeploymentSpec, gpu: GpuSpec) -> PlanRequest:
    extra = {arg.split("=", 1)[0] for arg in spec.serving.extra_args}
    return PlanRequest(
        precision=spec.precision,
        gpu=gpu,
        gpus_per_node=spec.gpu.per_node or gpu.default_per_node,
        kv_cache_dtype=spec.kv_cache_dtype,
        gpu_memory_utilization=spec.gpu_memory_utilization,
        max_model_len=spec.context.max_model_len,
        min_concurrency=spec.context.min_concurrency,
        overrides=ParallelismOverrides(
            tensor=spec.parallelism.tensor,
            pipeline=spec.parallelism.pipeline,
            data=spec.parallelism.data,
            expert=spec.parallelism.expert,
        ),
        strategy=spec.parallelism.strategy,
        mtp=MTP_SETTING[spec.speculative_decoding.mtp],
        hybrid_kv_cache=not any(flag in extra for flag in HYBRID_KV_OFF_FLAGS),
    )


# spec.model.configFrom: checkpoint before the download Job has reported the weights' config.json.
AWAITING_CHECKPOINT_CONFIG = "AwaitingCheckpointConfig"


def model_for(spec: MimoDeploymentSpec, checkpoint_config: str | None = None) -> ResolvedModel | PlanError:
    """The checkpoint the spec names (or describes with spec.model.config, or whose config.json the
    download Job read: `checkpoint_config`), with its profile as vLLM will load it: without the
    encoders when every multimodal limit is 0."""
    config, origin = spec.model.config, "spec.model.config"
    if spec.model.config_from == "checkpoint":
        if checkpoint_config is None:
            return PlanError(
                AWAITING_CHECKPOINT_CONFIG,
                f"spec.model.configFrom: checkpoint: {spec.model.name} is planned from the config.json in "
                "its weights once the download Job has fetched them",
            )
        config, origin = checkpoint_config, f"the config.json of {spec.model.name} (read by the download Job)"
    try:
        resolved = resolve_model(spec.model.name, config, spec.model.copy_of, spec.precision, origin)
    except UnknownModel as err:
        return PlanError(err.reason, str(err))
    limits = spec.model.multimodal_limits
    if limits is not None and not resolved.serving.multimodal:
        return PlanError(
            "ModelNotMultimodal",
            f"spec.model.multimodalLimits applies to multimodal models; {spec.model.name} serves text only",
        )
    if limits is not None and limits.text_only():
        resolved = replace(resolved, profile=resolved.profile.without_encoders())
    return resolved


def request_for_model(request: PlanRequest, resolved: ResolvedModel) -> PlanRequest | PlanError:
    """Fit a request to what the checkpoint can do: the precision it is stored in, and MTP only when
    its weights carry MTP blocks (vLLM's MTP drafter loads the first one)."""
    mismatch = precision_problem(resolved, request.precision)
    if mismatch is not None:
        return PlanError("PrecisionMismatch", mismatch)
    if resolved.profile.mtp_blocks == 0:
        if request.mtp:
            return PlanError(
                "NoMtpWeights",
                f"speculative decoding with MTP is on, but {resolved.profile.hf_repo} declares no MTP "
                "blocks (num_nextn_predict_layers in its config.json): set speculativeDecoding.mtp: off",
            )
        return replace(request, mtp=False)
    return request


def model_notes(resolved: ResolvedModel, name: str) -> tuple[str, ...]:
    """What a person should know about the checkpoint behind a plan (status.plan.notes, CLI)."""
    profile, notes = resolved.profile, []
    if resolved.known is not None and resolved.known.revision:
        notes.append(
            f"sized from {resolved.known.name}'s config.json at revision {resolved.known.revision[:12]}; "
            "pin spec.model.revision to it to serve exactly what was planned"
        )
    elif resolved.known is None:
        notes.append(
            f"{name}: sized as a {profile.official_precision} {profile.architecture} checkpoint from "
            "spec.model.copyOf, spec.model.config or the config.json of its weights; the planner cannot "
            "check the weight files themselves"
        )
    if profile.encoders:
        total = sum(enc.params for enc in profile.encoders) * 2 / 2**30
        notes.append(
            f"{profile.name} loads its vision and audio encoders ({total:.1f} GiB in bf16); set "
            "spec.model.multimodalLimits image, video and audio to 0 to serve text only without them"
        )
    return tuple(notes)


def plan_for(spec: MimoDeploymentSpec, checkpoint_config: str | None = None) -> Plan | PlanError:
    """Plan a spec; spec-level problems the CRD cannot catch come back as a PlanError too.
    `checkpoint_config`: the config.json the download Job read, for spec.model.configFrom: checkpoint."""
    owned = spec.owned_flags_in_extra_args()
    if owned:
        return PlanError(
            "ExtraArgsOwnedFlag",
            f"spec.serving.extraArgs sets {', '.join(owned)}, which the operator derives from the spec",
        )
    resolved = model_for(spec, checkpoint_config)
    if isinstance(resolved, PlanError):
        return resolved
    gpu = gpu_for(spec)
    if isinstance(gpu, PlanError):
        return gpu
    return plan_model(plan_request_for(spec, gpu), resolved, spec.model.name)


def plan_model(request: PlanRequest, resolved: ResolvedModel, name: str) -> Plan | PlanError:
    """Fit the request to the checkpoint, plan it, and put what to know about the checkpoint first:
    the operator (from a spec) and `mimo-operator plan` (from flags) both end here."""
    fitted = request_for_model(request, resolved)
    if isinstance(fitted, PlanError):
        return fitted
    planned = plan(fitted, resolved.profile)
    if isinstance(planned, PlanError):
        return planned
    return replace(planned, notes=model_notes(resolved, name) + planned.notes)
