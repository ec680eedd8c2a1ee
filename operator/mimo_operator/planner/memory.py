"""Per-GPU memory accounting for one layout: weights, the runtime reserve, and KV cache per token.

The reserve model (everything vLLM needs besides weights and KV cache), per GPU:
- runtime: CUDA context, NCCL communicators and cuBLAS workspaces, which vLLM counts as non-torch
  memory inside `--gpu-memory-utilization`; ~1.5-2.5 GiB observed on H100 TP8 (vLLM startup logs,
  "non-torch memory"). We take RUNTIME_GIB.
- activations: vLLM profiles a forward pass of `max_num_batched_tokens` tokens and a sampler pass of
  `max_num_seqs` sequences and keeps that peak out of the KV pool. We estimate it from the shapes
  (hidden-state buffers, attention projections, fused-MoE intermediates, fp32 logits and probs).
- CUDA graphs: captured after profiling; vLLM 0.33 accounts them before sizing the KV pool. A MoE
  model of this size captures ~0.5-1.5 GiB per GPU; we take CUDA_GRAPH_GIB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mimo_operator.models.gpus import GIB
from mimo_operator.models.profile import ModelProfile, ParamGroup, Precision, Shard
from mimo_operator.planner.types import Layout

RUNTIME_GIB = 2.0
CUDA_GRAPH_GIB = 1.0
# vLLM 0.33 `EngineArgs` defaults for `vllm serve` (UsageContext.OPENAI_API_SERVER) on GPUs with
# at least 70 GiB: max_num_batched_tokens 8192, max_num_seqs 1024 (vllm/engine/arg_utils.py).
MAX_NUM_BATCHED_TOKENS = 8192
MAX_NUM_SEQS = 1024
# vLLM's default KV block size for CUDA attention backends (vllm/config/cache.py: block_size 16).
KV_BLOCK_SIZE = 16
HIDDEN_STATE_BUFFERS = 6  # residual, normed input, attention output, MoE input/output, scratch


def stage_layers(num_layers: int, pipeline: int) -> list[range]:
    """Decoder layers per pipeline stage, split as vLLM's `get_pp_indices` does: evenly, with the
    remainder going to the stages just before the last (the last also computes the LM head)."""
    sizes = [num_layers // pipeline] * pipeline
    for i in range(2, num_layers % pipeline + 2):
        sizes[-i] += 1
    ranges, start = [], 0
    for size in sizes:
        ranges.append(range(start, start + size))
        start += size
    return ranges


def shard_divisor(group: ParamGroup, layout: Layout) -> int:
    """How many GPUs of one stage split `group` (1 = every GPU holds all of it)."""
    if group.shard is Shard.REPLICATED:
        return 1
    if group.shard is Shard.KV_HEADS:
        return min(layout.tensor, group.kv_heads)
    if group.shard is Shard.EXPERTS and layout.expert:
        return layout.tensor * layout.data
    return layout.tensor


@dataclass(frozen=True)
class WeightSplit:
    """Weight bytes on one GPU, experts apart because decode reads only the experts tokens hit."""

    experts: float
    other: float

    @property
    def total(self) -> float:
        return self.experts + self.other


def instances_on_stage(
    group: ParamGroup, profile: ModelProfile, layout: Layout, stage: int, mtp: bool
) -> int:
    """How many instances of a parameter group pipeline stage `stage` holds."""
    first, last = stage == 0, stage == layout.pipeline - 1
    if group.placement == "layers":
        layers = stage_layers(profile.num_layers, layout.pipeline)[stage]
        return sum(1 for layer in group.layers if layer in layers)
    if group.placement == "embedding":
        return 1 if first else 0
    if group.placement == "lm_head":
        return 1 if last else 0
    # vLLM loads one MTP block, on the last pipeline stage, only with speculative decoding.
    return 1 if (mtp and last) else 0


def weight_bytes_per_gpu(
    profile: ModelProfile, precision: Precision, layout: Layout, stage: int, mtp: bool
) -> WeightSplit:
    """Bytes of weights one GPU of pipeline stage `stage` holds."""
    experts = other = 0.0
    for group in profile.param_groups:
        instances = instances_on_stage(group, profile, layout, stage, mtp)
        size = instances * group.params_per_instance * group.storage_for(precision).bytes_per_param
        share = size / shard_divisor(group, layout)
        if group.shard is Shard.EXPERTS:
            experts += share
        else:
            other += share
    return WeightSplit(experts=experts, other=other)


@dataclass(frozen=True)
class KvLayout:
    """KV cache cost on one GPU of one pipeline stage."""

    bytes_per_token: int  # grows with every token of a request (full-attention layers)
    bytes_per_request: int  # fixed per running request (sliding-window layers keep only the window)


def kv_cost(
    profile: ModelProfile, layout: Layout, stage: int, dtype_bytes: int, hybrid: bool, mtp: bool
) -> KvLayout:
    """KV bytes on one GPU: full-attention layers store every token; with vLLM's hybrid KV cache
    manager (default on) sliding-window layers keep only the window plus one partial block; without
    it every layer stores the whole length."""
    layers = stage_layers(profile.num_layers, layout.pipeline)[stage]
    per_token = 0
    per_request = 0
    sliding = profile.sliding_attention
    for layer in layers:
        spec = profile.attention_for_layer(layer)
        # Under TP each GPU holds kv_heads / TP heads; past the KV head count heads are replicated.
        held = max(1, spec.kv_heads // layout.tensor)
        cost = spec.kv_bytes_per_token_per_layer(held, dtype_bytes)
        if spec.sliding_window is None or not hybrid:
            per_token += cost
        else:
            per_request += cost * (spec.sliding_window + KV_BLOCK_SIZE)
    if mtp and stage == layout.pipeline - 1:
        # The MTP block's attention is a sliding-window layer (report section 2.3).
        held = max(1, sliding.kv_heads // layout.tensor)
        cost = sliding.kv_bytes_per_token_per_layer(held, dtype_bytes)
        window = sliding.sliding_window or 0
        if hybrid:
            per_request += cost * (window + KV_BLOCK_SIZE)
        else:
            per_token += cost
    return KvLayout(bytes_per_token=per_token, bytes_per_request=per_request)


def activation_bytes(profile: ModelProfile, layout: Layout) -> float:
    """Peak activation memory vLLM's profiling run keeps out of the KV pool, estimated from shapes."""
    tokens = MAX_NUM_BATCHED_TOKENS
    tp = layout.tensor
    attn = profile.full_attention
    hidden_states = tokens * profile.hidden_size * 2 * HIDDEN_STATE_BUFFERS
    qkv = tokens * math.ceil(attn.query_heads / tp) * (2 * attn.k_head_dim + attn.v_head_dim) * 2
    moe_split = tp * layout.data if layout.expert else tp
    moe_intermediate = (
        tokens
        * profile.moe.experts_per_token
        * 2
        * max(1, profile.moe.expert_intermediate // moe_split)
        * 2
        * 2
    )
    moe_output = tokens * profile.moe.experts_per_token * profile.hidden_size * 2
    logits = MAX_NUM_SEQS * profile.vocab_size * 4 * 2  # fp32 logits and probabilities
    return float(hidden_states + qkv + moe_intermediate + moe_output + logits)


def reserve_bytes(profile: ModelProfile, layout: Layout) -> float:
    return RUNTIME_GIB * GIB + CUDA_GRAPH_GIB * GIB + activation_bytes(profile, layout)
