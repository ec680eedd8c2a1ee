"""The planner's attention rule against vLLM 0.33.0's own backend selection, run on CPU.

For every catalog GPU and both KV cache dtypes, tests/vllm_cli/attention_check.py asks vLLM's code
(FlashAttentionDiffKVBackend.is_supported_on_current_device as mimo_v2.py calls it, FlashAttention's
start-up and kernel dtype checks, and a constructed TritonAttentionDiffKVImpl) what happens to this
model's two kinds of attention layers on that device. From those answers alone the test derives what
the plan must say: the default backend runs, or `--attention-backend TRITON_ATTN_DIFFKV` is needed,
or nothing runs and the plan is refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from mimo_operator.models.gpus import GPU_CATALOG, GpuSpec
from mimo_operator.planner.attention import attention_plan
from tests.vllm_cli.probe import run_vllm_script

# torch.cuda.get_device_capability() on ROCm reports the gfx target's major/minor digits
# (gfx942 -> 9.4, gfx950 -> 9.5), which is what vLLM's ROCm platform returns.
ROCM_CAPABILITY = {"gfx942": (9, 4), "gfx950": (9, 5)}
CASES = [(gpu, kv) for gpu in GPU_CATALOG.values() for kv in ("auto", "fp8")]


def _device(gpu: GpuSpec, kv: str) -> dict[str, Any]:
    if gpu.vendor == "amd":
        return {
            "vendor": "amd",
            "capability": ROCM_CAPABILITY[gpu.gfx_target],
            "gfx": gpu.gfx_target,
            "kv_cache_dtype": kv,
        }
    assert gpu.compute_capability is not None
    return {"vendor": "nvidia", "capability": list(gpu.compute_capability), "kv_cache_dtype": kv}


@pytest.fixture(scope="module")
def vllm_answers() -> list[dict[str, Any]]:
    return run_vllm_script("attention_check.py", [_device(gpu, kv) for gpu, kv in CASES])


def _expected(answer: dict[str, Any]) -> tuple[str | None, bool, bool]:
    """(backend, flag needed, refused) from what vLLM's code said about each kind of layer."""
    layers = answer["layers"].values()

    def default_runs(layer: dict[str, Any]) -> bool:
        if layer["default_backend"] == "FLASH_ATTN_DIFFKV":
            return bool(layer["flash_starts"] and layer["flash_reads_kv_dtype"])
        return bool(layer["triton_starts"])

    defaults = {layer["default_backend"] for layer in layers}
    if all(default_runs(layer) for layer in layers) and len(defaults) == 1:
        return defaults.pop(), False, False
    if all(layer["triton_starts"] for layer in layers):
        return "TRITON_ATTN_DIFFKV", True, False
    return None, False, True


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{g.key}-{kv}" for g, kv in CASES])
def test_attention_rule_matches_vllm(vllm_answers: list[dict[str, Any]], index: int) -> None:
    gpu, kv = CASES[index]
    backend, flag, refused = _expected(vllm_answers[index])
    choice = attention_plan(gpu, kv)  # type: ignore[arg-type]
    assert (choice.backend, choice.flag, choice.problem is not None) == (backend, flag, refused), (
        vllm_answers[index]
    )


def test_the_cases_cover_every_outcome(vllm_answers: list[dict[str, Any]]) -> None:
    """A vLLM upgrade that made every GPU run the default path would make the test above trivial."""
    outcomes = {_expected(answer) for answer in vllm_answers}
    assert ("FLASH_ATTN_DIFFKV", False, False) in outcomes
    assert ("TRITON_ATTN_DIFFKV", False, False) in outcomes
    assert ("TRITON_ATTN_DIFFKV", True, False) in outcomes
    assert (None, False, True) in outcomes
