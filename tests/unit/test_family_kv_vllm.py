"""The family's KV figures against vLLM 0.33.0's own allocator: MiMo-V2.5 and V2.5-Pro, several GPUs.

The same comparison tests/unit/test_planner_vllm_kv.py makes for MiMo-V2-Flash, for the layouts the
family adds: V2.5 at 1M context (its backbone with encoders), and V2.5-Pro's 70 layers with 8 KV heads
on both attention kinds (one head per GPU at TP8) across one and two nodes. The layout given to vLLM
comes from the checkpoint's profile (derived from its config.json); only the KV pool per GPU comes
from the plan, as vLLM gets it from profiling. Within 2% on what vLLM logs and what its manager holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mimo_operator.models.family import known_profile
from mimo_operator.models.gpus import GPU_CATALOG
from mimo_operator.models.profile import ModelProfile
from mimo_operator.planner import ParallelismOverrides, Plan, PlanRequest, plan
from tests.unit.test_planner_vllm_kv import allocator_case
from tests.vllm_cli.probe import run_vllm_script

TOLERANCE = 0.02
V25, PRO = "XiaomiMiMo/MiMo-V2.5", "XiaomiMiMo/MiMo-V2.5-Pro"


@dataclass(frozen=True)
class Config:
    name: str
    model: str
    gpu: str
    kv: str
    max_len: int
    tensor: int | None = None
    pipeline: int | None = None
    text_only: bool = False


CONFIGS = [
    Config("V2.5, 4x H200 TP4, 1M", V25, "H200-141GB", "auto", 1048576),
    Config("V2.5 + fp8 KV, 4x B200 TP4, 1M", V25, "B200-192GB", "fp8", 1048576, tensor=4),
    Config("V2.5 text only, 8x H100 TP8, 512K", V25, "H100-80GB", "auto", 524288, text_only=True),
    Config("V2.5-Pro, 8x B200 TP8, 1M", PRO, "B200-192GB", "auto", 1048576),
    Config("V2.5-Pro + fp8 KV, 8x B200 TP8, 1M", PRO, "B200-192GB", "fp8", 1048576),
    Config("V2.5-Pro, 16x H200 TP8 x PP2, 1M", PRO, "H200-141GB", "auto", 1048576, pipeline=2),
    Config("V2.5-Pro, 16x H100 TP8 x PP2, 256K", PRO, "H100-80GB", "auto", 262144, pipeline=2),
]


def _profile(config: Config) -> ModelProfile:
    profile = known_profile(config.model)
    return profile.without_encoders() if config.text_only else profile


def _plan(config: Config) -> Plan:
    gpu = GPU_CATALOG[config.gpu]
    result = plan(
        PlanRequest(
            precision="fp8",
            gpu=gpu,
            gpus_per_node=gpu.default_per_node,
            kv_cache_dtype=config.kv,  # type: ignore[arg-type]
            max_model_len=config.max_len,
            overrides=ParallelismOverrides(tensor=config.tensor, pipeline=config.pipeline),
            mtp=False,
        ),
        _profile(config),
    )
    assert isinstance(result, Plan), f"{config.name}: {result}"
    return result


@pytest.fixture(scope="module")
def compared() -> list[tuple[Config, Plan, dict[str, Any]]]:
    plans = [_plan(config) for config in CONFIGS]
    cases = [allocator_case(_profile(c), p) for c, p in zip(CONFIGS, plans, strict=True)]
    answers = run_vllm_script("kv_allocator.py", cases)
    return list(zip(CONFIGS, plans, answers, strict=True))


def _close(planned: float, vllm: float) -> bool:
    return abs(planned - vllm) <= TOLERANCE * max(abs(vllm), 1)


def test_every_member_and_several_gpus_are_compared() -> None:
    assert {c.model for c in CONFIGS} == {V25, PRO}
    assert {c.gpu for c in CONFIGS} >= {"H100-80GB", "H200-141GB", "B200-192GB"}
    assert any(c.max_len == 1048576 for c in CONFIGS)


@pytest.mark.parametrize("index", range(len(CONFIGS)), ids=[c.name for c in CONFIGS])
def test_family_plan_matches_vllm_allocator(
    compared: list[tuple[Config, Plan, dict[str, Any]]], index: int
) -> None:
    config, result, vllm = compared[index]
    assert result.max_model_len == config.max_len
    rows = {
        "GPU KV cache size (log)": (result.vllm_log_kv_cache_tokens, vllm["log_kv_cache_tokens"]),
        "max concurrency (log)": (result.vllm_log_max_concurrency, vllm["log_max_concurrency"]),
        "held once prefilled": (result.max_concurrent_at_max_len, vllm["fits_at_steady_state"]),
        "admitted as prompts": (result.max_concurrent_prompts_at_max_len, vllm["admitted_as_prompts"]),
    }
    wrong = {k: v for k, v in rows.items() if not _close(*v)}
    assert not wrong, f"{config.name}: planner vs vLLM {wrong} (vLLM groups: {vllm['groups']})"
