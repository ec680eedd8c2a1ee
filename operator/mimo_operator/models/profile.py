"""Typed description of a model's architecture, from which the planner derives every byte it sizes.

Weight sizes are computed from parameter groups (shapes times the storage format of each group in each
precision), never typed in as one total, so a change to the architecture or to a quantisation scheme
changes the plan the same way it changes the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Literal

Precision = Literal["bf16", "fp8", "int4"]
KvCacheDtype = Literal["auto", "fp8"]


class StorageFormat(Enum):
    """How one parameter is stored on disk and in GPU memory."""

    BF16 = "bf16"
    # Block-wise e4m3 with one fp32 scale per 128x128 block (DeepSeek-style; MiMo-V2-Flash
    # config.json `quantization_config.weight_block_size: [128, 128]`).
    FP8_BLOCK128 = "fp8-block128"
    # 4-bit weights, group size 128, one bf16 scale and one 4-bit zero point per group (GPTQ/AWQ
    # layout used by the community int4 quantizations).
    INT4_GROUP128 = "int4-group128"

    @property
    def bytes_per_param(self) -> float:
        if self is StorageFormat.BF16:
            return 2.0
        if self is StorageFormat.FP8_BLOCK128:
            return 1.0 + 4.0 / (128 * 128)
        return 0.5 + (2.0 + 0.5) / 128


class Shard(Enum):
    """How vLLM splits a parameter group across the GPUs of one model instance."""

    VOCAB = "vocab"  # vocab-parallel embedding / LM head: split by TP, on the first / last PP stage
    TENSOR = "tensor"  # column/row-parallel linear layers: split by TP
    KV_HEADS = "kv-heads"  # K/V projections: split by TP up to the KV head count, replicated beyond
    EXPERTS = "experts"  # routed experts: split by TP, or by TP x DP with expert parallel
    REPLICATED = "replicated"  # norms and routers: a full copy on every GPU


@dataclass(frozen=True)
class AttentionSpec:
    """Head layout of one kind of attention layer."""

    query_heads: int
    kv_heads: int
    k_head_dim: int
    v_head_dim: int
    sliding_window: int | None = None  # tokens kept per request; None = full attention

    def kv_bytes_per_token_per_layer(self, kv_heads_held: int, dtype_bytes: int) -> int:
        return kv_heads_held * (self.k_head_dim + self.v_head_dim) * dtype_bytes


@dataclass(frozen=True)
class ParamGroup:
    """A set of identically shaped parameters that share storage format and sharding."""

    name: str
    params_per_instance: int
    layers: tuple[int, ...]  # decoder layers that carry one instance; () for embedding / LM head / MTP
    shard: Shard
    # Storage per requested precision; a precision missing here stores the group as bf16.
    storage: dict[str, StorageFormat]
    kv_heads: int = 0  # for Shard.KV_HEADS: the head count that bounds the split
    placement: Literal["layers", "embedding", "lm_head", "mtp"] = "layers"
    instances: int = 1  # copies outside decoder layers (e.g. per MTP block)

    def storage_for(self, precision: Precision) -> StorageFormat:
        return self.storage.get(precision, StorageFormat.BF16)

    @property
    def total_params(self) -> int:
        count = len(self.layers) if self.placement == "layers" else self.instances
        return self.params_per_instance * count


@dataclass(frozen=True)
class MoeSpec:
    routed_experts: int
    experts_per_token: int
    expert_intermediate: int
    moe_layers: tuple[int, ...]


@dataclass(frozen=True)
class EncoderSpec:
    """A multimodal encoder the checkpoint carries beside the decoder (bf16 weights)."""

    name: str  # parameter group name, e.g. vision_encoder
    modality: str  # the --limit-mm-per-prompt keys it serves: image/video (vision) or audio
    params: int
    tensor_parallel: bool  # vLLM splits it over the TP ranks (else every rank holds a full copy)


@dataclass(frozen=True)
class ModelProfile:
    """Everything the planner needs to know about one model."""

    name: str
    hf_repo: str
    architecture: str
    num_layers: int
    hidden_size: int
    vocab_size: int
    max_context: int
    full_attention: AttentionSpec
    sliding_attention: AttentionSpec
    full_attention_layers: tuple[int, ...]
    moe: MoeSpec
    dense_intermediate: int
    mtp_blocks: int
    param_groups: tuple[ParamGroup, ...]
    # Precision the checkpoint's weights are stored in (its config.json quantization_config).
    official_precision: Precision
    # Multimodal encoders (MiMo-V2.5's vision and audio towers); () for text-only models.
    encoders: tuple[EncoderSpec, ...] = ()

    def attention_for_layer(self, layer: int) -> AttentionSpec:
        return self.full_attention if layer in self.full_attention_layers else self.sliding_attention

    @property
    def sliding_layers(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.num_layers) if i not in self.full_attention_layers)

    def total_params(self, include_mtp: bool = True) -> int:
        return sum(g.total_params for g in self.param_groups if include_mtp or g.placement != "mtp")

    def without_encoders(self) -> ModelProfile:
        """The profile vLLM serves when every multimodal limit is 0: the encoders are not loaded."""
        names = {enc.name for enc in self.encoders}
        groups = tuple(g for g in self.param_groups if g.name not in names)
        return replace(self, param_groups=groups, encoders=())

    def checkpoint_bytes(self, precision: Precision) -> float:
        """Bytes of the whole checkpoint in `precision`, MTP blocks included (what is read from disk)."""
        return sum(g.total_params * g.storage_for(precision).bytes_per_param for g in self.param_groups)
