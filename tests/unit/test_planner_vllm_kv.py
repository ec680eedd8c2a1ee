"""The planner's KV figures against vLLM 0.33.0's own allocator, run on CPU in the vLLM venv.

For each configuration the planner plans a replica; tests/vllm_cli/kv_allocator.py then builds the
same layout with vLLM's KV cache spec classes, groups and sizes it with vLLM's planning code for the
KV pool the plan leaves on each GPU, computes what vLLM logs at start-up, and admits max-length
prompts into a real KVCacheManager until it refuses. The plan must agree within 2% on all four:
the logged "GPU KV cache size" and "Maximum concurrency", the requests held once prefilled, and the
requests admitted when each arrives as a max-length prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mimo_operator.models.gpus import GPU_CATALOG
from mimo_operator.models.mimo_v2_flash import MIMO_V2_FLASH as M
from mimo_operator.models.profile import ModelProfile
from mimo_operator.planner import ParallelismOverrides, Plan, PlanRequest, plan
from mimo_operator.planner.memory import KV_BLOCK_SIZE, MAX_NUM_BATCHED_TOKENS
from tests.vllm_cli.probe import run_vllm_script

TOLERANCE = 0.02


@dataclass(frozen=True)
class Config:
    name: str
    precision: str
    gpu: str
    kv: str
    max_len: int
    tensor: int | None = None
    pipeline: int | None = None
    data: int | None = None
    expert: bool | None = None
    mtp: bool = False
    hybrid: bool = True


CONFIGS = [
    Config("fp8, 4x H200 TP4, 256K", "fp8", "H200-141GB", "auto", 262144),
    Config("fp8 + fp8 KV, 4x H200 TP4, 256K", "fp8", "H200-141GB", "fp8", 262144),
    Config("fp8, 4x H200 TP4 +MTP, 128K", "fp8", "H200-141GB", "auto", 131072, mtp=True),
    Config("fp8, 8x H100 TP8, 128K", "fp8", "H100-80GB", "auto", 131072),
    Config("fp8 + fp8 KV, 8x H100 TP8, 64K", "fp8", "H100-80GB", "fp8", 65536),
    Config("bf16, 8x H200 TP8, 128K", "bf16", "H200-141GB", "auto", 131072),
    Config("bf16, 16x H100 TP8 x PP2, 128K", "bf16", "H100-80GB", "auto", 131072),
    Config("fp8 + fp8 KV, 4x B200 TP4, 256K", "fp8", "B200-192GB", "fp8", 262144, tensor=4),
    Config("fp8, 4x MI300X TP4, 128K", "fp8", "MI300X-192GB", "auto", 131072, tensor=4),
    Config(
        "fp8, 8x H200 DP2 x TP4 +EP, 32K", "fp8", "H200-141GB", "auto", 32768, tensor=4, data=2, expert=True
    ),
    Config("fp8, 8x H100 TP8, hybrid KV off, 32K", "fp8", "H100-80GB", "auto", 32768, hybrid=False),
]


def _plan(config: Config) -> Plan:
    gpu = GPU_CATALOG[config.gpu]
    result = plan(
        PlanRequest(
            precision=config.precision,  # type: ignore[arg-type]
            gpu=gpu,
            gpus_per_node=gpu.default_per_node,
            kv_cache_dtype=config.kv,  # type: ignore[arg-type]
            max_model_len=config.max_len,
            overrides=ParallelismOverrides(
                tensor=config.tensor, pipeline=config.pipeline, data=config.data, expert=config.expert
            ),
            mtp=config.mtp,
            hybrid_kv_cache=config.hybrid,
        ),
        M,
    )
    assert isinstance(result, Plan), f"{config.name}: {result}"
    return result


def allocator_case(model: ModelProfile, result: Plan) -> dict[str, Any]:
    """The plan's layout as kv_allocator.py's input, built from the model profile (not the plan's
    own KV arithmetic): only the KV pool per GPU comes from the plan, as vLLM gets it from profiling.
    Shared with test_family_kv_vllm.py, which runs the same comparison for the other MiMo models."""
    return {
        "num_layers": model.num_layers,
        "full_attention_layers": list(model.full_attention_layers),
        "extra_sliding_layers": 1 if result.mtp else 0,
        "full": {
            "num_kv_heads": model.full_attention.kv_heads,
            "head_size": model.full_attention.k_head_dim,
            "head_size_v": model.full_attention.v_head_dim,
        },
        "sliding": {
            "num_kv_heads": model.sliding_attention.kv_heads,
            "head_size": model.sliding_attention.k_head_dim,
            "head_size_v": model.sliding_attention.v_head_dim,
            "window": model.sliding_attention.sliding_window,
        },
        "tensor_parallel_size": result.tensor_parallel,
        "pipeline_parallel_size": result.pipeline_parallel,
        "kv_cache_dtype": result.kv_cache_dtype,
        "block_size": KV_BLOCK_SIZE,
        "max_model_len": result.max_model_len,
        "max_num_batched_tokens": MAX_NUM_BATCHED_TOKENS,
        "available_memory": list(result.kv_pool_bytes_per_stage),
        "hybrid_kv_cache_manager": result.hybrid_kv_cache,
        "attention_backend": result.attention_backend or "FLASH_ATTN_DIFFKV",
        "probe": True,
    }


@pytest.fixture(scope="module")
def compared() -> list[tuple[Config, Plan, dict[str, Any]]]:
    plans = [_plan(config) for config in CONFIGS]
    answers = run_vllm_script("kv_allocator.py", [allocator_case(M, p) for p in plans])
    return list(zip(CONFIGS, plans, answers, strict=True))


def _close(planned: float, vllm: float) -> bool:
    return abs(planned - vllm) <= TOLERANCE * max(abs(vllm), 1)


def test_at_least_eight_configurations_cover_the_layouts_that_matter() -> None:
    assert len(CONFIGS) >= 8
    assert {c.kv for c in CONFIGS} == {"auto", "fp8"}
    assert any(c.pipeline != 1 and c.gpu == "H100-80GB" and c.precision == "bf16" for c in CONFIGS)
    assert {c.max_len for c in CONFIGS} >= {32768, 65536, 131072, 262144}


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[c.name for c in CONFIGS])
def test_planner_matches_vllm_allocator(
    compared: list[tuple[Config, Plan, dict[str, Any]]], index: int
) -> None:
    config, result, vllm = compared[index]
    ranks = result.data_parallel
    rows = {
        "GPU KV cache size (log)": (result.vllm_log_kv_cache_tokens, vllm["log_kv_cache_tokens"] * ranks),
        "max concurrency (log)": (result.vllm_log_max_concurrency, vllm["log_max_concurrency"]),
        "held once prefilled": (result.max_concurrent_at_max_len, vllm["fits_at_steady_state"] * ranks),
        "admitted as prompts": (
            result.max_concurrent_prompts_at_max_len,
            vllm["admitted_as_prompts"] * ranks,
        ),
    }
    wrong = {k: v for k, v in rows.items() if not _close(*v)}
    assert not wrong, f"{config.name}: planner vs vLLM {wrong} (vLLM groups: {vllm['groups']})"


def test_the_start_up_log_reads_lower_than_what_the_pool_holds(
    compared: list[tuple[Config, Plan, dict[str, Any]]],
) -> None:
    """The reason the plan carries both figures: with the hybrid manager vLLM's start-up estimate
    charges every request the sliding-window worst case, so it logs fewer than fit."""
    for config, _, vllm in compared:
        if config.hybrid:
            assert vllm["log_max_concurrency"] < vllm["fits_at_steady_state"], config.name
