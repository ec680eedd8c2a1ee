"""The MiMo-V2-Flash profile: architecture constants with their sources, and its parameter groups.

Sources: the model's config.json on Hugging Face (XiaomiMiMo/MiMo-V2-Flash), the technical report
(arXiv 2601.02780) and its GitHub README, as summarised and cross-checked in design/model-facts.md.
"""

from __future__ import annotations

from mimo_operator.models.profile import (
    AttentionSpec,
    ModelProfile,
    MoeSpec,
    ParamGroup,
    Shard,
    StorageFormat,
)

# config.json: num_hidden_layers 48, hidden_size 4096, vocab_size 152576, max_position_embeddings 262144.
NUM_LAYERS = 48
HIDDEN = 4096
VOCAB = 152576
MAX_CONTEXT = 262144
# config.json hybrid_layer_pattern: full attention on layers 0, 5, 11, 17, 23, 29, 35, 41, 47;
# the other 39 use sliding-window attention with a 128-token window (sliding_window 128).
FULL_ATTENTION_LAYERS = (0, 5, 11, 17, 23, 29, 35, 41, 47)
SLIDING_WINDOW = 128
# config.json: 64 query heads everywhere; 4 KV heads on full-attention layers, 8 on sliding ones;
# head_dim 192 for Q/K and v_head_dim 128 (report section 2.1).
FULL_ATTENTION = AttentionSpec(query_heads=64, kv_heads=4, k_head_dim=192, v_head_dim=128)
SLIDING_ATTENTION = AttentionSpec(
    query_heads=64, kv_heads=8, k_head_dim=192, v_head_dim=128, sliding_window=SLIDING_WINDOW
)
# config.json: layer 0 dense (intermediate_size 16384); layers 1-47 MoE with n_routed_experts 256,
# num_experts_per_tok 8, moe_intermediate_size 2048, no shared expert.
DENSE_INTERMEDIATE = 16384
MOE = MoeSpec(
    routed_experts=256, experts_per_token=8, expert_intermediate=2048, moe_layers=tuple(range(1, NUM_LAYERS))
)
# Report section 2.3: three MTP blocks (~0.33B each), each a sliding-window attention layer with a
# dense FFN; vLLM loads only the first for speculative decoding.
MTP_BLOCKS = 3

# The official checkpoint is fp8 (config.json quantization_config: fp8, block [128, 128]); its
# `ignored_layers` keep o_proj, the embeddings and the LM head in bf16 (model-facts.md).
_FP8 = StorageFormat.FP8_BLOCK128
_INT4 = StorageFormat.INT4_GROUP128
QUANTISED = {"fp8": _FP8, "int4": _INT4}
O_PROJ = {"int4": _INT4}  # bf16 in the fp8 checkpoint; int4 quantizations include it

ALL_LAYERS = tuple(range(NUM_LAYERS))
SLIDING_LAYERS = tuple(i for i in ALL_LAYERS if i not in FULL_ATTENTION_LAYERS)


def _qkv_params(spec: AttentionSpec) -> tuple[int, int]:
    """(query params, key+value params) of one attention layer."""
    q = HIDDEN * spec.query_heads * spec.k_head_dim
    kv = HIDDEN * spec.kv_heads * (spec.k_head_dim + spec.v_head_dim)
    return q, kv


def _o_params(spec: AttentionSpec) -> int:
    return spec.query_heads * spec.v_head_dim * HIDDEN


def _param_groups() -> tuple[ParamGroup, ...]:
    full_q, full_kv = _qkv_params(FULL_ATTENTION)
    swa_q, swa_kv = _qkv_params(SLIDING_ATTENTION)
    expert = 3 * HIDDEN * MOE.expert_intermediate  # gate, up and down projections
    dense_mlp = 3 * HIDDEN * DENSE_INTERMEDIATE
    mtp_block = (
        swa_q
        + swa_kv
        + _o_params(SLIDING_ATTENTION)
        + dense_mlp
        + 2 * HIDDEN * HIDDEN  # eh_proj: concatenated [embedding; hidden] -> hidden
    )
    return (
        ParamGroup("embed_tokens", VOCAB * HIDDEN, (), Shard.VOCAB, {}, placement="embedding"),
        ParamGroup("lm_head", VOCAB * HIDDEN, (), Shard.VOCAB, {}, placement="lm_head"),
        ParamGroup("full_attn.q_proj", full_q, FULL_ATTENTION_LAYERS, Shard.TENSOR, QUANTISED),
        ParamGroup(
            "full_attn.kv_proj", full_kv, FULL_ATTENTION_LAYERS, Shard.KV_HEADS, QUANTISED, kv_heads=4
        ),
        ParamGroup(
            "full_attn.o_proj", _o_params(FULL_ATTENTION), FULL_ATTENTION_LAYERS, Shard.TENSOR, O_PROJ
        ),
        ParamGroup("swa_attn.q_proj", swa_q, SLIDING_LAYERS, Shard.TENSOR, QUANTISED),
        ParamGroup("swa_attn.kv_proj", swa_kv, SLIDING_LAYERS, Shard.KV_HEADS, QUANTISED, kv_heads=8),
        ParamGroup("swa_attn.o_proj", _o_params(SLIDING_ATTENTION), SLIDING_LAYERS, Shard.TENSOR, O_PROJ),
        ParamGroup("dense_mlp", dense_mlp, (0,), Shard.TENSOR, QUANTISED),
        ParamGroup("experts", MOE.routed_experts * expert, MOE.moe_layers, Shard.EXPERTS, QUANTISED),
        ParamGroup("router", HIDDEN * MOE.routed_experts, MOE.moe_layers, Shard.REPLICATED, {}),
        ParamGroup("norms", 2 * HIDDEN, ALL_LAYERS, Shard.REPLICATED, {}),
        ParamGroup(
            "mtp_block", mtp_block, (), Shard.TENSOR, QUANTISED, placement="mtp", instances=MTP_BLOCKS
        ),
    )


MIMO_V2_FLASH = ModelProfile(
    name="MiMo-V2-Flash",
    hf_repo="XiaomiMiMo/MiMo-V2-Flash",
    architecture="MiMoV2FlashForCausalLM",
    num_layers=NUM_LAYERS,
    hidden_size=HIDDEN,
    vocab_size=VOCAB,
    max_context=MAX_CONTEXT,
    full_attention=FULL_ATTENTION,
    sliding_attention=SLIDING_ATTENTION,
    full_attention_layers=FULL_ATTENTION_LAYERS,
    moe=MOE,
    dense_intermediate=DENSE_INTERMEDIATE,
    mtp_blocks=MTP_BLOCKS,
    param_groups=_param_groups(),
    official_precision="fp8",
)
