"""Can this model's attention run on a GPU with the requested KV cache dtype, and with which backend?

MiMo-V2-Flash's attention has K heads of 192 and V heads of 128 (different sizes), and its
sliding-window layers carry attention sinks. vLLM 0.33.0 serves that shape with two "DiffKV" backends
only (`vllm/model_executor/models/mimo_v2.py`, MiMoV2Attention): per layer it takes
FLASH_ATTN_DIFFKV when `FlashAttentionDiffKVBackend.is_supported_on_current_device` says FlashAttention
3 or 4 runs there, else TRITON_ATTN_DIFFKV; `--attention-backend <X>_DIFFKV` forces one for all
layers. The rule below restates what that code decides on each architecture (read from
`v1/attention/backends/fa_utils.py`, `flash_attn.py`, `flash_attn_diffkv.py`, `triton_attn.py`,
`vllm_flash_attn/flash_attn_interface.py`), and tests/unit/test_planner_attention.py checks it
against the installed vLLM code, run on CPU with the device capability of each catalog GPU:

- NVIDIA SM 9.x: FA3 (full-attention layers) / FA4 (sink layers: "Diff-KV with sinks: upgrading
  FlashAttention 3 -> 4"). bf16 KV runs. fp8 KV: `flash_attn_supports_kv_cache_dtype` is False for
  FA4 on SM90 unless head size 512, so the sink layers cannot read an fp8 cache: pass
  `--attention-backend TRITON_ATTN_DIFFKV` (Triton reads fp8 from SM 8.9 up).
- NVIDIA SM 10.x: FA4 for K 192 / V 128. bf16 KV runs. fp8 KV: FlashAttentionImpl's start-up check
  (made with V = K = 192, which FA4's TMEM limit sends to FA2) raises "FlashAttention does not
  support fp8 kv-cache on this device": pass `--attention-backend TRITON_ATTN_DIFFKV`.
- NVIDIA SM 8.0 / 8.9: FA3/4 do not exist there, so the default is TRITON_ATTN_DIFFKV. bf16 KV runs
  on kernels no public run of this model has validated (a patched run of the sibling MiMo-V2.5 on
  them produced garbage: vLLM issue #41519). fp8 KV: TritonAttentionImpl raises below SM 8.9
  ("native FP8 (fp8e4nv) requires SM89+"), so A100 cannot use it.
- AMD (ROCm): `get_flash_attn_version` returns None on ROCm, so the default is TRITON_ATTN_DIFFKV,
  which the public vLLM recipe runs on MI300X/MI325X/MI355X (bf16 KV, VLLM_ROCM_USE_AITER=0).
  fp8 KV passes vLLM's checks (gfx942/gfx950 report capability 9.4/9.5) but no public run used it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mimo_operator.models.gpus import GpuSpec
from mimo_operator.models.profile import KvCacheDtype

Backend = Literal["FLASH_ATTN_DIFFKV", "TRITON_ATTN_DIFFKV"]
FLASH: Backend = "FLASH_ATTN_DIFFKV"
TRITON: Backend = "TRITON_ATTN_DIFFKV"
# vLLM issue where a run of the sibling MiMo-V2.5 on the Triton DiffKV path (A100/L40S class)
# produced wrong output: https://github.com/vllm-project/vllm/issues/41519
TRITON_UNVALIDATED_ISSUE = "vLLM issue #41519"
# TritonAttentionImpl.__init__ (vllm/v1/attention/backends/triton_attn.py): fp8 KV needs SM 8.9+.
TRITON_FP8_MIN_CAPABILITY = (8, 9)
# flash_attn_interface._is_fa3_supported / _is_fa4_supported: FA3 on 9.x, FA4 on 9.x, 10.x, 11.x.
FA_DIFFKV_MAJORS = (9, 10, 11)


@dataclass(frozen=True)
class AttentionPlan:
    """How vLLM will run this model's attention on one GPU kind, or why it cannot."""

    backend: Backend | None  # None when no backend can run it
    flag: bool  # the operator must pass `--attention-backend <backend>`
    problem: str | None  # why the plan must be refused; None when it can run
    notes: tuple[str, ...] = ()

    @property
    def default_backend(self) -> bool:
        return not self.flag


def attention_plan(gpu: GpuSpec, kv_cache_dtype: KvCacheDtype) -> AttentionPlan:
    """The backend vLLM 0.33.0 picks (or must be told to pick) for MiMo-V2-Flash on `gpu`."""
    fp8 = kv_cache_dtype == "fp8"
    if gpu.vendor == "amd":
        notes: tuple[str, ...] = (
            f"attention: {TRITON} on {gpu.arch_name} (vLLM's only DiffKV backend on ROCm)",
        )
        if fp8:
            notes += ("fp8 KV cache on ROCm passes vLLM's checks, but no public run of this model used it",)
        return AttentionPlan(TRITON, flag=False, problem=None, notes=notes)
    capability = gpu.compute_capability
    if capability is None:
        note = (
            f"attention backend not checked: a custom GPU has no known compute capability "
            f"(vLLM picks {FLASH} on SM 9.x/10.x, else {TRITON})"
        )
        if fp8:
            # Triton reads fp8 on every architecture that has fp8 at all; FA-DiffKV does not.
            return AttentionPlan(TRITON, flag=True, problem=None, notes=(note, _fp8_flag_note(gpu)))
        return AttentionPlan(None, flag=False, problem=None, notes=(note,))
    if capability[0] in FA_DIFFKV_MAJORS:
        if fp8:
            return AttentionPlan(TRITON, flag=True, problem=None, notes=(_fp8_flag_note(gpu),))
        return AttentionPlan(
            FLASH, flag=False, problem=None, notes=(f"attention: {FLASH} on {gpu.arch_name}",)
        )
    # SM 8.x: no FlashAttention 3/4, vLLM falls back to the Triton DiffKV kernels.
    if fp8 and capability < TRITON_FP8_MIN_CAPABILITY:
        return AttentionPlan(
            None,
            flag=False,
            problem=(
                f"an fp8 KV cache cannot run on {gpu.key} ({gpu.arch_name}): this model's attention "
                f"(K 192 / V 128 heads) needs a DiffKV backend, and vLLM 0.33.0's only one there, "
                f"{TRITON}, refuses fp8 below SM 8.9; use kvCacheDtype auto"
            ),
        )
    warning = (
        f"warning: on {gpu.key} ({gpu.arch_name}) vLLM runs this model's attention with {TRITON}, "
        f"which no public run of MiMo-V2-Flash has validated ({TRITON_UNVALIDATED_ISSUE}: wrong output "
        f"from the sibling MiMo-V2.5 on these kernels); check outputs before serving"
    )
    return AttentionPlan(TRITON, flag=False, problem=None, notes=(warning,))


def _fp8_flag_note(gpu: GpuSpec) -> str:
    return (
        f"attention: --attention-backend {TRITON}, because vLLM's default {FLASH} cannot read an fp8 "
        f"KV cache with K 192 / V 128 heads and sinks on {gpu.arch_name}"
    )
