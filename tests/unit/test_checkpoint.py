"""config.json -> ModelProfile: the one parser every MiMo release goes through.

The V2-Flash profile used to be typed in by hand; the hand-typed version lives on below as the
regression reference, so the fixture-derived profile must size weights and KV exactly as before.
Missing or unknown keys are refused by name, never filled in.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from mimo_operator.models.checkpoint import (
    CheckpointConfigError,
    CheckpointSource,
    checkpoint_precision,
    planning_config,
    profile_from_config,
)
from mimo_operator.models.family import (
    KNOWN_CHECKPOINTS,
    index_total_size,
    known_profile,
    published_config,
    traits_for_architecture,
)
from mimo_operator.models.gpus import GPU_CATALOG
from mimo_operator.models.mimo_v2_flash import MIMO_V2_FLASH
from mimo_operator.models.profile import (
    AttentionSpec,
    ModelProfile,
    MoeSpec,
    ParamGroup,
    Shard,
    StorageFormat,
)
from mimo_operator.planner import ParallelismOverrides, Plan, PlanRequest, plan

GIB = 2**30


def _fixture(name: str) -> dict[str, Any]:
    text = resources.files("mimo_operator.models").joinpath("checkpoints", name).read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def _hand_typed_v2_flash() -> ModelProfile:
    """The profile as mimo_v2_flash.py typed it before config.json parsing (commit 948d21c)."""
    layers, hidden, vocab = 48, 4096, 152576
    full_layers = (0, 5, 11, 17, 23, 29, 35, 41, 47)
    full = AttentionSpec(query_heads=64, kv_heads=4, k_head_dim=192, v_head_dim=128)
    swa = AttentionSpec(query_heads=64, kv_heads=8, k_head_dim=192, v_head_dim=128, sliding_window=128)
    moe = MoeSpec(
        routed_experts=256, experts_per_token=8, expert_intermediate=2048, moe_layers=tuple(range(1, 48))
    )
    fp8, int4 = StorageFormat.FP8_BLOCK128, StorageFormat.INT4_GROUP128
    quantised, o_proj = {"fp8": fp8, "int4": int4}, {"int4": int4}
    all_layers = tuple(range(layers))
    swa_layers = tuple(i for i in all_layers if i not in full_layers)

    def qkv(spec: AttentionSpec) -> tuple[int, int]:
        return hidden * spec.query_heads * spec.k_head_dim, hidden * spec.kv_heads * (
            spec.k_head_dim + spec.v_head_dim
        )

    def o(spec: AttentionSpec) -> int:
        return spec.query_heads * spec.v_head_dim * hidden

    full_q, full_kv = qkv(full)
    swa_q, swa_kv = qkv(swa)
    dense = 3 * hidden * 16384
    mtp_block = swa_q + swa_kv + o(swa) + dense + 2 * hidden * hidden
    groups = (
        ParamGroup("embed_tokens", vocab * hidden, (), Shard.VOCAB, {}, placement="embedding"),
        ParamGroup("lm_head", vocab * hidden, (), Shard.VOCAB, {}, placement="lm_head"),
        ParamGroup("full_attn.q_proj", full_q, full_layers, Shard.TENSOR, quantised),
        ParamGroup("full_attn.kv_proj", full_kv, full_layers, Shard.KV_HEADS, quantised, kv_heads=4),
        ParamGroup("full_attn.o_proj", o(full), full_layers, Shard.TENSOR, o_proj),
        ParamGroup("swa_attn.q_proj", swa_q, swa_layers, Shard.TENSOR, quantised),
        ParamGroup("swa_attn.kv_proj", swa_kv, swa_layers, Shard.KV_HEADS, quantised, kv_heads=8),
        ParamGroup("swa_attn.o_proj", o(swa), swa_layers, Shard.TENSOR, o_proj),
        ParamGroup("dense_mlp", dense, (0,), Shard.TENSOR, quantised),
        ParamGroup("experts", 256 * 3 * hidden * 2048, moe.moe_layers, Shard.EXPERTS, quantised),
        ParamGroup("router", hidden * 256, moe.moe_layers, Shard.REPLICATED, {}),
        ParamGroup("norms", 2 * hidden, all_layers, Shard.REPLICATED, {}),
        ParamGroup("mtp_block", mtp_block, (), Shard.TENSOR, quantised, placement="mtp", instances=3),
    )
    return ModelProfile(
        name="MiMo-V2-Flash",
        hf_repo="XiaomiMiMo/MiMo-V2-Flash",
        architecture="MiMoV2FlashForCausalLM",
        num_layers=layers,
        hidden_size=hidden,
        vocab_size=vocab,
        max_context=262144,
        full_attention=full,
        sliding_attention=swa,
        full_attention_layers=full_layers,
        moe=moe,
        dense_intermediate=16384,
        mtp_blocks=3,
        param_groups=groups,
        official_precision="fp8",
    )


def test_derived_v2_flash_profile_is_the_hand_typed_one() -> None:
    assert _hand_typed_v2_flash() == MIMO_V2_FLASH


@pytest.mark.parametrize(
    ("precision", "gpu", "overrides"),
    [
        ("fp8", "H100-80GB", ParallelismOverrides()),
        ("fp8", "H200-141GB", ParallelismOverrides()),
        ("bf16", "H100-80GB", ParallelismOverrides()),
        ("int4", "A100-80GB", ParallelismOverrides()),
        ("fp8", "H200-141GB", ParallelismOverrides(tensor=4, data=2)),
    ],
)
def test_derived_v2_flash_plans_weights_and_kv_as_before(
    precision: str, gpu: str, overrides: ParallelismOverrides
) -> None:
    request = PlanRequest(
        precision=precision,  # type: ignore[arg-type]
        gpu=GPU_CATALOG[gpu],
        gpus_per_node=8,
        overrides=overrides,
        strategy="throughput" if overrides.data else "latency",
    )
    old, new = plan(request, _hand_typed_v2_flash()), plan(request, MIMO_V2_FLASH)
    assert isinstance(old, Plan) and isinstance(new, Plan)
    assert (new.weights_gib_per_gpu, new.kv_bytes_per_token_per_gpu, new.kv_cache_tokens) == (
        old.weights_gib_per_gpu,
        old.kv_bytes_per_token_per_gpu,
        old.kv_cache_tokens,
    )


@pytest.mark.parametrize("name", sorted(KNOWN_CHECKPOINTS))
def test_weight_bytes_are_within_one_percent_of_the_published_total(name: str) -> None:
    known, profile = KNOWN_CHECKPOINTS[name], known_profile(name)
    assert known.published_bytes is not None
    assert profile.checkpoint_bytes(profile.official_precision) == pytest.approx(
        known.published_bytes, rel=0.01
    )


def test_v2_5_pro_total_is_its_index_total_size() -> None:
    # The registry's figure must be the stored index's, not a second copy typed elsewhere.
    assert (
        index_total_size("mimo-v2.5-pro.index.json")
        == KNOWN_CHECKPOINTS["XiaomiMiMo/MiMo-V2.5-Pro"].published_bytes
    )
    assert index_total_size("mimo-v2.5.index.json") is None  # not found: see the fixture README


def test_v2_5_pro_shapes_come_from_its_config() -> None:
    pro = known_profile("XiaomiMiMo/MiMo-V2.5-Pro")
    # Model card / review: 70 layers (1 dense + 69 MoE), 384 experts top-8, hidden 6144, 128/8 heads,
    # head dims 192/128, SWA:GA about 6:1 with window 128, 1M context.
    assert (pro.num_layers, pro.hidden_size, len(pro.moe.moe_layers), pro.moe.routed_experts) == (
        70,
        6144,
        69,
        384,
    )
    assert pro.full_attention == AttentionSpec(128, 8, 192, 128)
    assert pro.sliding_attention == AttentionSpec(128, 8, 192, 128, sliding_window=128)
    assert pro.full_attention_layers == (0, 7, 15, 23, 31, 39, 47, 55, 62, 69)
    assert pro.max_context == 1_048_576 and pro.mtp_blocks == 3 and pro.official_precision == "fp8"
    # Model card: 1.02T parameters; the weight listing counts 1,023,244,718,976.
    assert pro.total_params() == pytest.approx(1_023_244_718_976, rel=0.002)


def test_v2_5_backbone_is_v2_flash_plus_encoders_and_1m_context() -> None:
    v25 = known_profile("XiaomiMiMo/MiMo-V2.5")
    text = v25.without_encoders()
    assert text.param_groups == MIMO_V2_FLASH.param_groups
    assert text.full_attention_layers == MIMO_V2_FLASH.full_attention_layers
    assert v25.max_context == 1_048_576 and MIMO_V2_FLASH.max_context == 262_144
    # Weight listing: 310,775,040,000 parameters including the ViT and the audio encoder.
    assert v25.total_params() == pytest.approx(310_775_040_000, rel=0.002)


REQUIRED = [
    "architectures",
    "num_hidden_layers",
    "hidden_size",
    "vocab_size",
    "max_position_embeddings",
    "hybrid_layer_pattern",
    "moe_layer_freq",
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
]


@pytest.mark.parametrize("key", REQUIRED)
def test_a_missing_key_is_refused_by_name(key: str) -> None:
    config = _fixture("mimo-v2.5-pro.config.json")
    del config[key]
    with pytest.raises(CheckpointConfigError) as err:
        profile_from_config(config, CheckpointSource("someone/fine-tune"))
    assert err.value.key == key and key in str(err.value)


def test_a_missing_window_is_refused_by_name() -> None:
    config = _fixture("mimo-v2.5-pro.config.json")
    del config["sliding_window"], config["sliding_window_size"]
    with pytest.raises(CheckpointConfigError, match="sliding_window"):
        profile_from_config(config, CheckpointSource("x"))


def test_pattern_of_the_wrong_length_is_refused() -> None:
    config = _fixture("mimo-v2.5-pro.config.json")
    config["hybrid_layer_pattern"] = config["hybrid_layer_pattern"][:-1]
    with pytest.raises(CheckpointConfigError, match="each of the 70 layers"):
        profile_from_config(config, CheckpointSource("x"))


def test_an_unknown_architecture_is_refused_with_the_supported_list() -> None:
    config = _fixture("mimo-v2-flash.config.json")
    config["architectures"] = ["DeepseekV3ForCausalLM"]
    with pytest.raises(CheckpointConfigError) as err:
        profile_from_config(config, CheckpointSource("x"))
    assert err.value.key == "architectures"
    assert "MiMoV2FlashForCausalLM" in str(err.value) and "MiMoV2ForCausalLM" in str(err.value)


def test_precision_comes_from_quantization_config() -> None:
    config = _fixture("mimo-v2-flash.config.json")
    assert checkpoint_precision(config) == "fp8"
    bf16 = copy.deepcopy(config)
    del bf16["quantization_config"]
    assert checkpoint_precision(bf16) == "bf16"
    assert checkpoint_precision({"quantization_config": {"quant_method": "gptq", "bits": 4}}) == "int4"
    # MiMo-V2.6's MXFP4 experts are not a format the planner sizes: refused, not guessed as fp8.
    mxfp4 = {
        "quantization_config": {
            "quant_method": "fp8",
            "store_dtype": "mxfp4",
            "weight_block_size": [128, 128],
        }
    }
    with pytest.raises(CheckpointConfigError, match="mxfp4"):
        checkpoint_precision(mxfp4)


def test_a_bf16_fine_tune_keeps_o_proj_in_its_own_precision() -> None:
    config = _fixture("mimo-v2-flash.config.json")
    del config["quantization_config"]
    profile = profile_from_config(config, CheckpointSource("me/flash-sft", mtp_layers=3))
    assert profile.official_precision == "bf16"
    # ~309B parameters plus MTP in bf16, 2 bytes each: ~618 GB.
    assert profile.checkpoint_bytes("bf16") / 1e9 == pytest.approx(618, rel=0.01)


def test_mtp_blocks_declared_in_config_win() -> None:
    config = _fixture("mimo-v2-flash.config.json")
    config["num_nextn_predict_layers"] = 1
    assert profile_from_config(config, CheckpointSource("x", mtp_layers=3)).mtp_blocks == 1
    del config["num_nextn_predict_layers"]
    assert profile_from_config(config, CheckpointSource("x")).mtp_blocks == 0


@pytest.mark.parametrize("name", sorted(KNOWN_CHECKPOINTS))
def test_the_planning_subset_plans_as_the_whole_config(name: str) -> None:
    # What a download Job reports of a fine-tune's config.json is this subset: it must give the same
    # profile and serving traits as the file itself, and be a fraction of it.
    whole = published_config(name)
    subset = planning_config(whole)
    source = CheckpointSource(name="example/fine-tune")
    assert profile_from_config(subset, source) == profile_from_config(whole, source)
    assert traits_for_architecture(subset) == traits_for_architecture(whole)
    assert set(subset) < set(whole)
