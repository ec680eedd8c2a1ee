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


def _feasible(**kwargs: object) -> Plan:
    """A plan that must exist; a refusal fails the test with the planner's own reason."""
    result = _plan(**kwargs)
    assert isinstance(result, Plan), f"expected a plan, got {result}"
    return result


def _refused(reason: str, **kwargs: object) -> PlanError:
    """A request that must be refused for `reason`."""
    result = _plan(**kwargs)
    assert isinstance(result, PlanError), f"expected {reason}, got a plan: {getattr(result, 'summary', '')}"
    assert result.reason == reason, result.message
    return result


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
    # bf16 weights on B200 fit every TP from 4 up; below that they do not fit one GPU's share.
    for tp in (4, 8):
        result = _feasible(
            precision="bf16",
            gpu=GPU_CATALOG["B200-192GB"],
            gpus_per_node=8,
            overrides=ParallelismOverrides(tensor=tp, pipeline=1),
        )
        assert result.kv_bytes_per_token_per_gpu == _full_attention_kv_bytes_per_token(tp)


def test_kv_per_token_matches_public_sglang_log_at_tp4() -> None:
    # sgl-project/sglang PR #15464: at TP4 the full-attention pool held 1,496,958 tokens in
    # K 4.82 GiB + V 3.21 GiB per GPU.
    sglang = (4.82 + 3.21) * GIB / 1_496_958
    result = _feasible(precision="fp8", gpu=H200, gpus_per_node=4)
    assert result.tensor_parallel == 4
    assert result.kv_bytes_per_token_per_gpu == pytest.approx(sglang, rel=0.01)


def test_four_h200_fp8_tp4_fits_and_is_the_recipe_layout() -> None:
    result = _feasible(precision="fp8", gpu=H200, gpus_per_node=8)
    assert (result.gpus_per_replica, result.tensor_parallel, result.nodes_per_replica) == (4, 4, 1)
    weights = _fp8_weights_per_gpu_gib(4)
    assert result.weights_gib_per_gpu == pytest.approx(weights, rel=0.01)
    # auto stops at the vLLM recipe's "max is 128k", though 256K would fit.
    assert result.max_model_len == 131072
    assert not result.mtp  # MTP is opt-in
    assert result.validated and result.validation.startswith("validated by vLLM recipe")
    assert (result.attention_backend, result.attention_backend_flag) == ("FLASH_ATTN_DIFFKV", False)


def test_four_h100_fp8_does_not_fit() -> None:
    result = _refused(
        "WeightsDoNotFit",
        precision="fp8",
        gpu=H100,
        gpus_per_node=8,
        overrides=ParallelismOverrides(tensor=4),
    )
    offered = H100.memory_mib / 1024 * 0.90
    needed = _fp8_weights_per_gpu_gib(4)
    assert needed > offered  # 72.7 > 71.7: the blog's 4x H100 recipe cannot load
    assert f"offers {offered:.1f} GiB" in result.message
    stated = re.search(r"weights need ([0-9.]+) GiB per GPU at TP4", result.message)
    assert stated is not None
    assert float(stated.group(1)) == pytest.approx(needed, abs=0.2)


def test_blog_four_h100_at_097_still_does_not_fit() -> None:
    result = _refused(
        "WeightsDoNotFit",
        precision="fp8",
        gpu=H100,
        gpus_per_node=8,
        gpu_memory_utilization=0.97,
        overrides=ParallelismOverrides(tensor=4),
        max_model_len=16384,
    )
    offered = H100.memory_mib / 1024 * 0.97
    # 72.7 GiB of weights alone fit the 77.3 GiB; with vLLM's reserve on top they do not.
    assert _fp8_weights_per_gpu_gib(4) < offered
    assert f"offers {offered:.1f} GiB at utilization 0.97" in result.message
    needed = re.search(r"reserved = ([0-9.]+) GiB", result.message)
    assert needed is not None and float(needed.group(1)) > offered


def test_bf16_on_h100_needs_two_nodes() -> None:
    result = _feasible(precision="bf16", gpu=H100, gpus_per_node=8)
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
    result = _feasible(precision="bf16", gpu=H200, gpus_per_node=8)
    assert (result.gpus_per_replica, result.tensor_parallel, result.pipeline_parallel) == (8, 8, 1)
    assert any("no official bf16 checkpoint" in n for n in result.notes)
    assert not result.validated and "bf16 weights" in result.validation


def test_full_context_fits_on_eight_h100_fp8() -> None:
    result = _feasible(precision="fp8", gpu=H100, gpus_per_node=8, max_model_len=262144)
    assert result.gpus_per_replica == 8 and result.max_model_len == 262144
    # 256K tokens of unique KV at TP8 is about 1.4 GiB per GPU: far below the ~30 GiB pool, so many
    # full-length requests fit at once (the blog claims 40-60 GB for one).
    one_request = 262144 * _full_attention_kv_bytes_per_token(8) / GIB
    assert one_request == pytest.approx(1.41, abs=0.01)
    # The pool also keeps each request's 128-token windows in 5 sliding-window block groups and loses
    # part of a block per group, so somewhat fewer fit than pool / one request.
    upper = result.kv_cache_gib_per_gpu / one_request
    assert 0.9 * upper <= result.max_concurrent_at_max_len <= upper
    # Above the recipe's 128K: the plan must say so.
    assert any("above 131072" in n for n in result.notes)
    assert "max-model-len 262144 above the recipe" in result.validation


def test_blog_tp_that_does_not_divide_heads_is_rejected() -> None:
    result = _refused(
        "TensorParallelInvalid",
        precision="bf16",
        gpu=H100,
        gpus_per_node=10,
        overrides=ParallelismOverrides(tensor=10),
    )
    assert "must divide the 64 query heads" in result.message


def test_pipeline_forbidden_and_node_too_small() -> None:
    result = _refused(
        "NeedsMoreThanOneNode",
        precision="bf16",
        gpu=H100,
        gpus_per_node=8,
        overrides=ParallelismOverrides(pipeline=1),
    )
    assert "pipeline parallel is fixed at 1" in result.message


def test_tensor_parallel_larger_than_node() -> None:
    result = _refused(
        "TensorParallelExceedsNode",
        precision="fp8",
        gpu=GPU_CATALOG["L40S-48GB"],
        gpus_per_node=4,
        overrides=ParallelismOverrides(tensor=8),
    )
    assert "nodes have 4 L40S-48GB" in result.message


def test_disabling_hybrid_kv_cache_multiplies_kv_per_token() -> None:
    on = _feasible(precision="fp8", gpu=H100, gpus_per_node=8)
    off = _feasible(precision="fp8", gpu=H100, gpus_per_node=8, hybrid_kv_cache=False)
    # 39 sliding layers with 8 KV heads at TP8 (one head each) join the 9 full-attention layers.
    assert (
        off.kv_bytes_per_token_per_gpu
        == on.kv_bytes_per_token_per_gpu + 39 * 1 * 320 * 2 + 1 * 320 * 2 * off.mtp
    )
    assert off.kv_cache_tokens < on.kv_cache_tokens / 5


def test_fp8_kv_cache_halves_bytes_per_token() -> None:
    auto = _feasible(precision="fp8", gpu=H100, gpus_per_node=8)
    fp8 = _feasible(precision="fp8", gpu=H100, gpus_per_node=8, kv_cache_dtype="fp8")
    assert fp8.kv_bytes_per_token_per_gpu * 2 == auto.kv_bytes_per_token_per_gpu
    # The default FlashAttention DiffKV path cannot read fp8 KV on Hopper: the plan must ask for Triton.
    assert (fp8.attention_backend, fp8.attention_backend_flag) == ("TRITON_ATTN_DIFFKV", True)
    assert (auto.attention_backend, auto.attention_backend_flag) == ("FLASH_ATTN_DIFFKV", False)


def test_throughput_strategy_uses_data_and_expert_parallel_on_a_full_node() -> None:
    latency = _feasible(precision="fp8", gpu=H100, gpus_per_node=8)
    throughput = _feasible(precision="fp8", gpu=H100, gpus_per_node=8, strategy="throughput")
    assert (throughput.tensor_parallel, throughput.data_parallel, throughput.expert_parallel) == (4, 2, True)
    # Two DP ranks each keep their own KV pool: roughly twice the tokens of TP8 on the same 8 GPUs.
    assert throughput.kv_cache_tokens > 1.8 * latency.kv_cache_tokens
    assert throughput.est_decode_tokens_per_s_per_gpu and latency.est_decode_tokens_per_s_per_gpu
    assert throughput.est_decode_tokens_per_s_per_gpu > latency.est_decode_tokens_per_s_per_gpu
    assert any(r.layout == "TP8" for r in throughput.rejected)


def test_min_concurrency_lowers_auto_length() -> None:
    one = _feasible(precision="fp8", gpu=H100, gpus_per_node=8, hybrid_kv_cache=False)
    many = _feasible(precision="fp8", gpu=H100, gpus_per_node=8, hybrid_kv_cache=False, min_concurrency=16)
    # Without the hybrid manager every layer stores every token (48 layers at one head each, MTP off):
    per_token = 48 * 320 * 2
    assert many.kv_bytes_per_token_per_gpu == per_token
    assert many.max_model_len < one.max_model_len
    assert 16 * many.max_model_len * per_token <= many.kv_cache_gib_per_gpu * GIB + 0.01 * GIB
    assert many.max_concurrent_at_max_len >= 16


def test_context_beyond_the_model_is_refused() -> None:
    result = _refused("ContextTooLong", precision="fp8", gpu=H100, gpus_per_node=8, max_model_len=262145)
    assert "262144" in result.message


def test_custom_gpu() -> None:
    from mimo_operator.models.gpus import custom_gpu

    result = _feasible(precision="fp8", gpu=custom_gpu(96), gpus_per_node=8)
    assert result.gpu == "custom" and result.est_decode_tokens_per_s_per_gpu is None
    assert any("attention backend not checked" in n for n in result.notes)


# --- GPU capability (planner/attention.py; checked against vLLM's code in test_planner_attention.py)


def test_fp8_kv_cache_on_a100_is_refused_with_the_reason() -> None:
    result = _refused(
        "AttentionUnsupported",
        precision="fp8",
        gpu=GPU_CATALOG["A100-80GB"],
        gpus_per_node=8,
        kv_cache_dtype="fp8",
    )
    assert "refuses fp8 below SM 8.9" in result.message and "kvCacheDtype auto" in result.message


def test_bf16_kv_on_ampere_and_ada_warns_about_unvalidated_triton_kernels() -> None:
    for key in ("A100-80GB", "L40S-48GB"):
        gpu = GPU_CATALOG[key]
        result = _plan(precision="int4", gpu=gpu, gpus_per_node=gpu.default_per_node, max_model_len=32768)
        assert isinstance(result, Plan), f"{key}: {result}"
        assert result.attention_backend == "TRITON_ATTN_DIFFKV" and not result.attention_backend_flag
        assert any(n.startswith("warning:") and "41519" in n for n in result.notes), result.notes


def test_fp8_kv_cache_on_blackwell_needs_the_triton_flag() -> None:
    for key in ("B200-192GB", "B300-288GB"):
        result = _feasible(precision="fp8", gpu=GPU_CATALOG[key], gpus_per_node=8, kv_cache_dtype="fp8")
        assert (result.attention_backend, result.attention_backend_flag) == ("TRITON_ATTN_DIFFKV", True)
        assert any("--attention-backend TRITON_ATTN_DIFFKV" in n for n in result.notes)


# --- AMD and the new NVIDIA parts


def test_mi300x_class_prefers_the_validated_recipe_tp4_over_a_smaller_tp2() -> None:
    for key in ("MI300X-192GB", "MI325X-256GB", "MI355X-288GB"):
        result = _feasible(precision="fp8", gpu=GPU_CATALOG[key], gpus_per_node=8)
        # fp8 weights (~145 GiB per GPU at TP2) fit two of these GPUs, but the public recipe ran TP4:
        # validated layouts come first, and TP2 is listed with the reason.
        assert result.tensor_parallel == 4 and result.validated, result.validation
        assert any(r.layout == "TP2" and "no public run validates it" in r.reason for r in result.rejected)
        assert result.gpu_vendor == "amd"
        assert result.attention_backend == "TRITON_ATTN_DIFFKV" and not result.attention_backend_flag


def test_amd_tp4_is_validated_only_as_the_recipe_ran_it() -> None:
    result = _feasible(
        precision="fp8",
        gpu=GPU_CATALOG["MI300X-192GB"],
        gpus_per_node=8,
        overrides=ParallelismOverrides(tensor=4),
    )
    assert result.validated and "vLLM recipe" in result.validation
    fp8_kv = _feasible(
        precision="fp8",
        gpu=GPU_CATALOG["MI300X-192GB"],
        gpus_per_node=8,
        overrides=ParallelismOverrides(tensor=4),
        kv_cache_dtype="fp8",
    )
    assert not fp8_kv.validated and "fp8 KV cache" in fp8_kv.validation


def test_h20_and_h800_plan_like_hopper() -> None:
    h800 = _feasible(precision="fp8", gpu=GPU_CATALOG["H800-80GB"], gpus_per_node=8)
    h100 = _feasible(precision="fp8", gpu=H100, gpus_per_node=8)
    # Same memory as H100 SXM (81559 MiB): the same layout and KV pool.
    assert (h800.tensor_parallel, h800.kv_cache_gib_per_gpu) == (
        h100.tensor_parallel,
        h100.kv_cache_gib_per_gpu,
    )
    h20 = _feasible(precision="fp8", gpu=GPU_CATALOG["H20-96GB"], gpus_per_node=8)
    assert h20.attention_backend == "FLASH_ATTN_DIFFKV"
    # 97871 MiB x 0.9 = 86.0 GiB per GPU; TP4 puts 72.7 GiB of weights on each: it fits, with
    # under 8 GiB left for KV after vLLM's reserve.
    assert h20.tensor_parallel == 4
    assert 0 < h20.kv_cache_gib_per_gpu < 86.0 - 72.7


def test_dp2_tp4_ep_on_eight_h200_is_validated_by_the_recipe() -> None:
    result = _feasible(
        precision="fp8",
        gpu=H200,
        gpus_per_node=8,
        overrides=ParallelismOverrides(tensor=4, data=2, expert=True),
    )
    assert result.validated and "vLLM recipe" in result.validation


def test_tp8_on_h100_is_validated_by_sglang_not_vllm() -> None:
    result = _feasible(precision="fp8", gpu=H100, gpus_per_node=8)
    assert result.tensor_parallel == 8
    assert result.validated and "SGLang" in result.validation and "not vLLM" in result.validation


def test_tp8_on_b200_is_unvalidated_and_says_where_it_was_run() -> None:
    result = _feasible(
        precision="fp8",
        gpu=GPU_CATALOG["B200-192GB"],
        gpus_per_node=8,
        overrides=ParallelismOverrides(tensor=8),
    )
    assert not result.validated
    assert "run publicly on H100-80GB, H200-141GB, not on B200-192GB" in result.validation


# --- defaults with their sources


def test_mtp_is_opt_in() -> None:
    default = _feasible(precision="fp8", gpu=H200, gpus_per_node=8)
    asked = _feasible(precision="fp8", gpu=H200, gpus_per_node=8, mtp=True)
    assert not default.mtp and asked.mtp
    assert not asked.validated and "MTP" in asked.validation


# --- inputs that cannot serve anything


@pytest.mark.parametrize(
    ("kwargs", "reason", "words"),
    [
        ({"max_model_len": 1}, "ContextTooShort", "below 4096 tokens"),
        ({"max_model_len": 4095}, "ContextTooShort", "below 4096 tokens"),
        ({"min_concurrency": 0}, "InvalidConcurrency", "outside 1..4096"),
        ({"min_concurrency": 5000}, "InvalidConcurrency", "outside 1..4096"),
        ({"gpu_memory_utilization": 0.01}, "InvalidUtilization", "outside (0.5, 0.98]"),
        ({"gpu_memory_utilization": 0.99}, "InvalidUtilization", "outside (0.5, 0.98]"),
    ],
)
def test_inputs_that_cannot_serve_anything_are_refused(
    kwargs: dict[str, object], reason: str, words: str
) -> None:
    result = _refused(reason, precision="fp8", gpu=H100, gpus_per_node=8, **kwargs)
    assert words in result.message


def test_the_smallest_allowed_context_plans() -> None:
    result = _feasible(precision="fp8", gpu=H100, gpus_per_node=8, max_model_len=4096)
    assert result.max_model_len == 4096


def test_more_concurrent_requests_than_vllm_schedules_per_rank_is_refused() -> None:
    result = _refused(
        "ContextDoesNotFit",
        precision="fp8",
        gpu=GPU_CATALOG["B300-288GB"],
        gpus_per_node=8,
        max_model_len=4096,
        min_concurrency=2000,
        overrides=ParallelismOverrides(data=1),
    )
    assert "vLLM schedules at most 1024" in result.message
