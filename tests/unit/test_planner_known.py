"""Plans for the configurations model-facts.md checks, with expectations derived from the architecture.

Each expected number is computed here from first principles (head counts, parameter shapes, driver
memory), independently of the planner's own accounting, so a planner bug shows up as a mismatch.
"""

import re

import pytest

from mimo_operator.models.gpus import GPU_CATALOG
from mimo_operator.models.mimo_v2_flash import MIMO_V2_FLASH as M
from mimo_operator.planner import ParallelismOverrides, Plan, PlanError, PlanRequest, plan

GIB = 2**30
H100, H200 = GPU_CATALOG["H100-80GB"], GPU_CATALOG["H200-141GB"]


def _plan(**kwargs: object) -> Plan | PlanError:
    return plan(PlanRequest(**kwargs), M)  # type: ignore[arg-type]


def _full_attention_kv_bytes_per_token(tp: int, dtype_bytes: int = 2) -> int:
    # 9 full-attention layers x KV heads held per GPU x (K 192 + V 128) x dtype bytes
    return 9 * max(1, 4 // tp) * (192 + 128) * dtype_bytes


def _fp8_weights_per_gpu_gib(tp: int) -> float:
    """fp8 checkpoint without MTP, split over TP (replicated norms/router are < 0.1 GiB)."""
    mtp_block = next(g for g in M.param_groups if g.placement == "mtp")
    mtp_bytes = mtp_block.total_params * mtp_block.storage_for("fp8").bytes_per_param
    return (M.checkpoint_bytes("fp8") - mtp_bytes) / tp / GIB


def test_kv_bytes_per_token_follow_the_hybrid_layout() -> None:
    assert _full_attention_kv_bytes_per_token(1) == 23_040  # model-facts: whole model, bf16
    for tp in (1, 2, 4, 8):
        result = (
            _plan(
                precision="bf16",
                gpu=GPU_CATALOG["B200-192GB"],
                gpus_per_node=8,
                overrides=ParallelismOverrides(tensor=tp, pipeline=1),
            )
            if tp >= 4
            else None
        )
        if isinstance(result, Plan):
            assert result.kv_bytes_per_token_per_gpu == _full_attention_kv_bytes_per_token(tp)


def test_kv_per_token_matches_public_sglang_log_at_tp4() -> None:
    # sgl-project/sglang PR #15464: at TP4 the full-attention pool held 1,496,958 tokens in
    # K 4.82 GiB + V 3.21 GiB per GPU.
    sglang = (4.82 + 3.21) * GIB / 1_496_958
    result = _plan(precision="fp8", gpu=H200, gpus_per_node=4)
    assert isinstance(result, Plan) and result.tensor_parallel == 4
    assert result.kv_bytes_per_token_per_gpu == pytest.approx(sglang, rel=0.01)


def test_four_h200_fp8_tp4_fits() -> None:
    result = _plan(precision="fp8", gpu=H200, gpus_per_node=8)
    assert isinstance(result, Plan)
    assert (result.gpus_per_replica, result.tensor_parallel, result.nodes_per_replica) == (4, 4, 1)
    weights = _fp8_weights_per_gpu_gib(4)
    assert result.weights_gib_per_gpu == pytest.approx(weights, rel=0.01)
    assert result.max_model_len == M.max_context


def test_four_h100_fp8_does_not_fit() -> None:
    result = _plan(precision="fp8", gpu=H100, gpus_per_node=8, overrides=ParallelismOverrides(tensor=4))
    assert isinstance(result, PlanError)
    assert result.reason == "WeightsDoNotFit"
    offered = H100.memory_mib / 1024 * 0.90
    needed = _fp8_weights_per_gpu_gib(4)
    assert needed > offered  # 72.7 > 71.7: the blog's 4x H100 recipe cannot load
    assert f"offers {offered:.1f} GiB" in result.message
    stated = re.search(r"weights need ([0-9.]+) GiB per GPU at TP4", result.message)
    assert stated is not None
    assert float(stated.group(1)) == pytest.approx(needed, abs=0.2)


def test_blog_four_h100_at_097_still_does_not_fit() -> None:
    result = _plan(
        precision="fp8",
        gpu=H100,
        gpus_per_node=8,
        gpu_memory_utilization=0.97,
        overrides=ParallelismOverrides(tensor=4),
        max_model_len=16384,
    )
    assert isinstance(result, PlanError)


def test_bf16_on_h100_needs_two_nodes() -> None:
    result = _plan(precision="bf16", gpu=H100, gpus_per_node=8)
    assert isinstance(result, Plan)
    assert result.nodes_per_replica == 2
    assert (result.tensor_parallel, result.pipeline_parallel) == (8, 2)
    assert result.gpus_per_replica == 16
    # Each of 16 GPUs holds about 1/16 of the bf16 weights. Stages split layers 0-23 / 24-47, so the
    # second holds one more MoE layer (the first has the dense layer 0), and each holds one vocab matrix.
    mtp = sum(g.total_params * 2 for g in M.param_groups if g.placement == "mtp")  # MTP is off with PP
    even = (M.checkpoint_bytes("bf16") - mtp) / 16 / GIB
    one_moe_layer = 256 * 3 * M.hidden_size * 2048 * 2 / 8 / GIB
    assert even < result.weights_gib_per_gpu < even + one_moe_layer


def test_bf16_on_eight_h200_fits_with_tp8() -> None:
    result = _plan(precision="bf16", gpu=H200, gpus_per_node=8)
    assert isinstance(result, Plan)
    assert (result.gpus_per_replica, result.tensor_parallel, result.pipeline_parallel) == (8, 8, 1)
    assert any("no official bf16 checkpoint" in n for n in result.notes)


def test_full_context_fits_on_eight_h100_fp8() -> None:
    result = _plan(precision="fp8", gpu=H100, gpus_per_node=8, max_model_len=262144)
    assert isinstance(result, Plan)
    assert result.gpus_per_replica == 8 and result.max_model_len == 262144
    # 256K tokens of unique KV at TP8 is about 1.4 GiB per GPU: far below the ~30 GiB pool, so many
    # full-length requests fit at once (the blog claims 40-60 GB for one).
    one_request = 262144 * _full_attention_kv_bytes_per_token(8) / GIB
    assert one_request == pytest.approx(1.41, abs=0.01)
    assert result.max_concurrent_at_max_len == pytest.approx(result.kv_cache_gib_per_gpu / one_request, abs=1)


def test_blog_tp_that_does_not_divide_heads_is_rejected() -> None:
    result = _plan(precision="bf16", gpu=H100, gpus_per_node=10, overrides=ParallelismOverrides(tensor=10))
    assert isinstance(result, PlanError) and result.reason == "TensorParallelInvalid"


def test_pipeline_forbidden_and_node_too_small() -> None:
    result = _plan(precision="bf16", gpu=H100, gpus_per_node=8, overrides=ParallelismOverrides(pipeline=1))
    assert isinstance(result, PlanError)
    assert result.reason == "NeedsMoreThanOneNode"
    assert "pipeline parallel is fixed at 1" in result.message


def test_tensor_parallel_larger_than_node() -> None:
    result = _plan(
        precision="fp8",
        gpu=GPU_CATALOG["L40S-48GB"],
        gpus_per_node=4,
        overrides=ParallelismOverrides(tensor=8),
    )
    assert isinstance(result, PlanError) and result.reason == "TensorParallelExceedsNode"


def test_disabling_hybrid_kv_cache_multiplies_kv_per_token() -> None:
    on = _plan(precision="fp8", gpu=H100, gpus_per_node=8)
    off = _plan(precision="fp8", gpu=H100, gpus_per_node=8, hybrid_kv_cache=False)
    assert isinstance(on, Plan) and isinstance(off, Plan)
    # 39 sliding layers with 8 KV heads at TP8 (one head each) join the 9 full-attention layers.
    assert (
        off.kv_bytes_per_token_per_gpu
        == on.kv_bytes_per_token_per_gpu + 39 * 1 * 320 * 2 + 1 * 320 * 2 * off.mtp
    )
    assert off.kv_cache_tokens < on.kv_cache_tokens / 5


def test_fp8_kv_cache_halves_bytes_per_token() -> None:
    auto = _plan(precision="fp8", gpu=H100, gpus_per_node=8)
    fp8 = _plan(precision="fp8", gpu=H100, gpus_per_node=8, kv_cache_dtype="fp8")
    assert isinstance(auto, Plan) and isinstance(fp8, Plan)
    assert fp8.kv_bytes_per_token_per_gpu * 2 == auto.kv_bytes_per_token_per_gpu


def test_throughput_strategy_uses_data_and_expert_parallel_on_a_full_node() -> None:
    latency = _plan(precision="fp8", gpu=H100, gpus_per_node=8)
    throughput = _plan(precision="fp8", gpu=H100, gpus_per_node=8, strategy="throughput")
    assert isinstance(latency, Plan) and isinstance(throughput, Plan)
    assert (throughput.tensor_parallel, throughput.data_parallel, throughput.expert_parallel) == (4, 2, True)
    # Two DP ranks each keep their own KV pool: roughly twice the tokens of TP8 on the same 8 GPUs.
    assert throughput.kv_cache_tokens > 1.8 * latency.kv_cache_tokens
    assert throughput.est_decode_tokens_per_s_per_gpu and latency.est_decode_tokens_per_s_per_gpu
    assert throughput.est_decode_tokens_per_s_per_gpu > latency.est_decode_tokens_per_s_per_gpu
    assert any(r.layout == "TP8" for r in throughput.rejected)


def test_min_concurrency_lowers_auto_length() -> None:
    one = _plan(precision="fp8", gpu=H100, gpus_per_node=8, hybrid_kv_cache=False)
    many = _plan(precision="fp8", gpu=H100, gpus_per_node=8, hybrid_kv_cache=False, min_concurrency=16)
    assert isinstance(one, Plan) and isinstance(many, Plan)
    # Without the hybrid manager every layer stores every token (48 layers + MTP at one head each):
    per_token = (48 + 1) * 320 * 2
    assert many.kv_bytes_per_token_per_gpu == per_token
    assert many.max_model_len < one.max_model_len
    assert 16 * many.max_model_len * per_token <= many.kv_cache_gib_per_gpu * GIB + 0.01 * GIB
    assert many.max_concurrent_at_max_len >= 16


def test_context_beyond_the_model_is_refused() -> None:
    result = _plan(precision="fp8", gpu=H100, gpus_per_node=8, max_model_len=262145)
    assert isinstance(result, PlanError) and result.reason == "ContextTooLong"
    assert "262144" in result.message


def test_custom_gpu() -> None:
    from mimo_operator.models.gpus import custom_gpu

    result = _plan(precision="fp8", gpu=custom_gpu(96), gpus_per_node=8)
    assert isinstance(result, Plan)
    assert result.gpu == "custom" and result.est_decode_tokens_per_s_per_gpu is None
