"""From a checkpoint's own config.json to the planner's ModelProfile: one parser for every MiMo release.

Every MiMo-V2 checkpoint publishes its shapes in config.json (layer count, the hybrid attention pattern,
head counts and dims of both attention kinds, the sliding window, experts and which layers are MoE,
context length, quantization). Reading them here, instead of typing a profile per model, means a new
release is one fixture and its tests; a value the file does not carry is refused by name, never
assumed. Pure: a mapping in, a profile out (or a CheckpointConfigError naming what is missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mimo_operator.models.profile import (
    AttentionSpec,
    EncoderSpec,
    ModelProfile,
    MoeSpec,
    ParamGroup,
    Precision,
    Shard,
    StorageFormat,
)

# The decoder classes vLLM 0.33.0 registers for this family (vllm/model_executor/models/registry.py:
# MiMoV2FlashForCausalLM and MiMoV2ForCausalLM -> mimo_v2.py, MiMoV2OmniForCausalLM -> the
# omnimodal wrapper). All three share the hybrid SWA/GA decoder this parser reads.
SUPPORTED_ARCHITECTURES = ("MiMoV2FlashForCausalLM", "MiMoV2ForCausalLM", "MiMoV2OmniForCausalLM")

# fp8 block size the planner's FP8_BLOCK128 storage format models (quantization_config.weight_block_size).
_FP8_BLOCK = [128, 128]


# Every top-level key of config.json this module and models/family.py read (the encoders' configs
# only for their presence). A fine-tune's config travels from the download Job to the operator as this
# subset (the pod's termination message holds 4096 bytes); tests/unit/test_checkpoint.py checks that
# the subset plans exactly as the whole file does, so a key read later must be listed here.
PLANNING_KEYS = (
    "architectures",
    "num_hidden_layers",
    "hidden_size",
    "vocab_size",
    "max_position_embeddings",
    "hybrid_layer_pattern",
    "moe_layer_freq",
    "sliding_window",
    "sliding_window_size",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "v_head_dim",
    "swa_num_attention_heads",
    "swa_num_key_value_heads",
    "swa_head_dim",
    "swa_v_head_dim",
    "n_routed_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "intermediate_size",
    "n_shared_experts",
    "num_nextn_predict_layers",
    "quantization_config",
    "vision_config",
    "audio_config",
)
# Of the encoders' configs the planner needs only that they are there (family.traits_for_architecture).
_PRESENCE_ONLY = ("vision_config", "audio_config")


def planning_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a config.json the planner reads: plans the same as the whole file, and is small."""
    subset = {key: config[key] for key in PLANNING_KEYS if key in config}
    for key in _PRESENCE_ONLY:
        if key in subset:
            subset[key] = {}
    return subset


class CheckpointConfigError(ValueError):
    """config.json cannot be planned: `key` names the field that is missing or not understood."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class CheckpointSource:
    """Where a profile's numbers came from, for notes and error messages."""

    name: str  # what the user calls it: a Hugging Face repo id, or a path for a user-supplied config
    revision: str | None = None
    mtp_layers: int | None = None  # MTP blocks the weights carry, when config.json does not say
    encoders: tuple[EncoderSpec, ...] = ()  # multimodal encoders the weights carry


def _require(config: Mapping[str, Any], key: str, what: str) -> Any:
    value = config.get(key)
    if value is None:
        raise CheckpointConfigError(key, f"config.json has no {key}: the planner needs it to size {what}")
    return value


def _int(config: Mapping[str, Any], key: str, what: str) -> int:
    value = _require(config, key, what)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CheckpointConfigError(key, f"config.json {key} must be a positive integer, got {value!r}")
    return value


def _flags(config: Mapping[str, Any], key: str, layers: int, what: str) -> list[int]:
    value = _require(config, key, what)
    if not isinstance(value, Sequence) or len(value) != layers or any(v not in (0, 1) for v in value):
        raise CheckpointConfigError(
            key, f"config.json {key} must list 0 or 1 for each of the {layers} layers (num_hidden_layers)"
        )
    return [int(v) for v in value]


def checkpoint_precision(config: Mapping[str, Any]) -> Precision:
    """The precision the weights are stored in, from quantization_config (absent: bf16)."""
    quant = config.get("quantization_config")
    if quant is None:
        return "bf16"
    if not isinstance(quant, Mapping):
        raise CheckpointConfigError("quantization_config", "config.json quantization_config is not an object")
    method = quant.get("quant_method")
    if method == "fp8":
        if quant.get("store_dtype", "fp8") != "fp8":
            raise CheckpointConfigError(
                "quantization_config",
                f"quantization_config stores weights as {quant.get('store_dtype')}; the planner knows "
                "fp8 (block 128x128), bf16 and 4-bit group-128 checkpoints",
            )
        if list(quant.get("weight_block_size") or []) != _FP8_BLOCK:
            raise CheckpointConfigError(
                "quantization_config",
                f"quantization_config.weight_block_size is {quant.get('weight_block_size')}; the planner "
                "sizes fp8 checkpoints with 128x128 blocks",
            )
        return "fp8"
    if method in ("gptq", "awq") and quant.get("bits") == 4:
        return "int4"
    raise CheckpointConfigError(
        "quantization_config",
        f"quantization_config.quant_method {method!r} is not one the planner sizes "
        "(fp8 with 128x128 blocks, gptq/awq with bits 4, or none for bf16)",
    )


def _o_proj_quantised(config: Mapping[str, Any], layers: int) -> bool:
    """fp8 checkpoints of this family list every o_proj in ignored_layers: kept bf16."""
    quant = config.get("quantization_config") or {}
    ignored = set(quant.get("ignored_layers") or []) if isinstance(quant, Mapping) else set()
    return not all(f"model.layers.{i}.self_attn.o_proj" in ignored for i in range(layers))


def _mtp_layers(config: Mapping[str, Any], source: CheckpointSource) -> int:
    declared = config.get("num_nextn_predict_layers")
    if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 0:
        return declared
    return source.mtp_layers or 0


def profile_from_config(config: Mapping[str, Any], source: CheckpointSource) -> ModelProfile:
    """The planner's profile of one checkpoint. Raises CheckpointConfigError naming a missing key."""
    archs = _require(config, "architectures", "the model class vLLM loads")
    arch = archs[0] if isinstance(archs, Sequence) and not isinstance(archs, str) and archs else None
    if arch not in SUPPORTED_ARCHITECTURES:
        raise CheckpointConfigError(
            "architectures",
            f"config.json architectures {archs!r} is not a MiMo-V2 decoder the planner knows; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}",
        )
    layers = _int(config, "num_hidden_layers", "the decoder")
    hidden = _int(config, "hidden_size", "every weight matrix")
    vocab = _int(config, "vocab_size", "the embeddings and LM head")
    context = _int(config, "max_position_embeddings", "the longest context")
    pattern = _flags(config, "hybrid_layer_pattern", layers, "which layers keep the full context")
    moe_flags = _flags(config, "moe_layer_freq", layers, "which layers hold experts")
    window = config.get("sliding_window") or config.get("sliding_window_size")
    if not isinstance(window, int) or window <= 0:
        raise CheckpointConfigError(
            "sliding_window", "config.json has no sliding_window: the planner needs it to size sliding KV"
        )
    full = AttentionSpec(
        query_heads=_int(config, "num_attention_heads", "full-attention layers"),
        kv_heads=_int(config, "num_key_value_heads", "the full-attention KV cache"),
        k_head_dim=_int(config, "head_dim", "full-attention K heads"),
        v_head_dim=_int(config, "v_head_dim", "full-attention V heads"),
    )
    sliding = AttentionSpec(
        query_heads=_int(config, "swa_num_attention_heads", "sliding-window layers"),
        kv_heads=_int(config, "swa_num_key_value_heads", "the sliding-window KV cache"),
        k_head_dim=_int(config, "swa_head_dim", "sliding-window K heads"),
        v_head_dim=_int(config, "swa_v_head_dim", "sliding-window V heads"),
        sliding_window=window,
    )
    moe_layers = tuple(i for i, flag in enumerate(moe_flags) if flag)
    dense_layers = tuple(i for i, flag in enumerate(moe_flags) if not flag)
    moe = MoeSpec(
        routed_experts=_int(config, "n_routed_experts", "the experts"),
        experts_per_token=_int(config, "num_experts_per_tok", "expert reads per token"),
        expert_intermediate=_int(config, "moe_intermediate_size", "each expert"),
        moe_layers=moe_layers,
    )
    dense_intermediate = _int(config, "intermediate_size", "the dense FFN layers") if dense_layers else 0
    if config.get("n_shared_experts"):
        raise CheckpointConfigError(
            "n_shared_experts", "config.json declares shared experts, which no MiMo-V2 release has"
        )
    precision = checkpoint_precision(config)
    full_layers = tuple(i for i, kind in enumerate(pattern) if kind == 0)
    shapes = _Shapes(hidden, vocab, full, sliding, full_layers, layers, moe, dense_intermediate, dense_layers)
    mtp = _mtp_layers(config, source)
    groups = _param_groups(shapes, _o_proj_quantised(config, layers), mtp, source.encoders)
    return ModelProfile(
        name=source.name.rsplit("/", 1)[-1],
        hf_repo=source.name,
        architecture=arch,
        num_layers=layers,
        hidden_size=hidden,
        vocab_size=vocab,
        max_context=context,
        full_attention=full,
        sliding_attention=sliding,
        full_attention_layers=full_layers,
        moe=moe,
        dense_intermediate=dense_intermediate,
        mtp_blocks=mtp,
        param_groups=groups,
        official_precision=precision,
        encoders=source.encoders,
    )


@dataclass(frozen=True)
class _Shapes:
    hidden: int
    vocab: int
    full: AttentionSpec
    sliding: AttentionSpec
    full_layers: tuple[int, ...]
    layers: int
    moe: MoeSpec
    dense_intermediate: int
    dense_layers: tuple[int, ...]


_FP8 = StorageFormat.FP8_BLOCK128
_INT4 = StorageFormat.INT4_GROUP128
_QUANTISED = {"fp8": _FP8, "int4": _INT4}


def _param_groups(
    s: _Shapes, o_proj_fp8: bool, mtp_blocks: int, encoders: tuple[EncoderSpec, ...]
) -> tuple[ParamGroup, ...]:
    """Parameter groups by shape, storage and sharding. fp8 checkpoints keep o_proj, embeddings, LM head,
    norms and routers in bf16 (quantization_config.ignored_layers; the fp8 block format covers Linear
    layers only); int4 quantizations include o_proj."""

    def qkv(spec: AttentionSpec) -> tuple[int, int]:
        return s.hidden * spec.query_heads * spec.k_head_dim, s.hidden * spec.kv_heads * (
            spec.k_head_dim + spec.v_head_dim
        )

    def o_params(spec: AttentionSpec) -> int:
        return spec.query_heads * spec.v_head_dim * s.hidden

    o_storage = _QUANTISED if o_proj_fp8 else {"int4": _INT4}
    all_layers = tuple(range(s.layers))
    sliding_layers = tuple(i for i in all_layers if i not in s.full_layers)
    full_q, full_kv = qkv(s.full)
    swa_q, swa_kv = qkv(s.sliding)
    expert = 3 * s.hidden * s.moe.expert_intermediate  # gate, up and down projections
    dense_mlp = 3 * s.hidden * s.dense_intermediate
    # One MTP block: a sliding-window attention layer with a dense FFN, plus eh_proj that maps the
    # concatenated [embedding; hidden state] back to the hidden size (report section 2.3).
    mtp_block = swa_q + swa_kv + o_params(s.sliding) + dense_mlp + 2 * s.hidden * s.hidden
    groups = [
        ParamGroup("embed_tokens", s.vocab * s.hidden, (), Shard.VOCAB, {}, placement="embedding"),
        ParamGroup("lm_head", s.vocab * s.hidden, (), Shard.VOCAB, {}, placement="lm_head"),
        ParamGroup("full_attn.q_proj", full_q, s.full_layers, Shard.TENSOR, _QUANTISED),
        ParamGroup(
            "full_attn.kv_proj", full_kv, s.full_layers, Shard.KV_HEADS, _QUANTISED, kv_heads=s.full.kv_heads
        ),
        ParamGroup("full_attn.o_proj", o_params(s.full), s.full_layers, Shard.TENSOR, o_storage),
        ParamGroup("swa_attn.q_proj", swa_q, sliding_layers, Shard.TENSOR, _QUANTISED),
        ParamGroup(
            "swa_attn.kv_proj",
            swa_kv,
            sliding_layers,
            Shard.KV_HEADS,
            _QUANTISED,
            kv_heads=s.sliding.kv_heads,
        ),
        ParamGroup("swa_attn.o_proj", o_params(s.sliding), sliding_layers, Shard.TENSOR, o_storage),
        ParamGroup("dense_mlp", dense_mlp, s.dense_layers, Shard.TENSOR, _QUANTISED),
        ParamGroup("experts", s.moe.routed_experts * expert, s.moe.moe_layers, Shard.EXPERTS, _QUANTISED),
        ParamGroup("router", s.hidden * s.moe.routed_experts, s.moe.moe_layers, Shard.REPLICATED, {}),
        ParamGroup("norms", 2 * s.hidden, all_layers, Shard.REPLICATED, {}),
    ]
    if mtp_blocks:
        groups.append(
            ParamGroup(
                "mtp_block", mtp_block, (), Shard.TENSOR, _QUANTISED, placement="mtp", instances=mtp_blocks
            )
        )
    # Multimodal encoders run before the decoder, on the first pipeline stage, in bf16 as published.
    groups.extend(
        ParamGroup(
            enc.name,
            enc.params,
            (),
            Shard.TENSOR if enc.tensor_parallel else Shard.REPLICATED,
            {},
            placement="embedding",
        )
        for enc in encoders
    )
    return tuple(groups)
