"""Ask vLLM 0.33.0's own attention code which backend MiMo-V2-Flash's attention gets on a GPU.

Why this exists: the planner (operator/mimo_operator/planner/attention.py) promises, per GPU kind
and KV cache dtype, which DiffKV backend vLLM will use, whether `--attention-backend` must be
passed, and when the attention cannot run at all. Those promises come from reading vLLM's code;
this script runs that code instead, so a test can hold the planner to it.

It runs under the cached vLLM venv's interpreter (see harness.py and probe.py), never the
project's, on a machine without a GPU: vLLM's platform object is told the device's vendor and
compute capability (the only device facts the selection code reads), and the FlashAttention
2/3/4 extensions are reported available, as they are in the official vllm/vllm-openai image on
NVIDIA (their import fails here only because there is no CUDA driver).

Protocol:
  stdin:  JSON list of cases {"vendor": "nvidia" | "amd", "capability": [major, minor],
          "gfx": "gfx942" (AMD only), "kv_cache_dtype": "auto" | "fp8"}
  stdout: JSON list, one object per case, in order:
          {"layers": {"full": LAYER, "sliding": LAYER}}, where for the full-attention layers
          (no sinks) and the sliding-window layers (sinks), with K head 192 and V head 128:
          LAYER = {"default_backend": "FLASH_ATTN_DIFFKV" | "TRITON_ATTN_DIFFKV",
                   "flash_version": int | null,
                   "flash_starts": bool,        # FlashAttentionImpl's start-up dtype check passes
                   "flash_reads_kv_dtype": bool, # FA supports this KV dtype for the real head sizes
                   "triton_starts": bool, "triton_error": str | null}
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from vllm_process import json_channel  # type: ignore[import-not-found,unused-ignore]

_JSON_OUT = json_channel()  # before anything from vLLM is imported

import importlib.util  # noqa: E402
import types  # noqa: E402

import torch  # type: ignore[import-not-found,unused-ignore]  # noqa: E402


def _load_flash_attn_interface() -> Any:
    """vllm/vllm_flash_attn/__init__.py refuses to import without the compiled CUDA extensions;
    its flash_attn_interface module, which holds the FA2/3/4 availability and device checks that
    vLLM's selection code calls, imports fine. Register the package without running __init__."""
    spec = importlib.util.find_spec("vllm")
    assert spec is not None and spec.submodule_search_locations
    package = types.ModuleType("vllm.vllm_flash_attn")
    package.__path__ = [os.path.join(next(iter(spec.submodule_search_locations)), "vllm_flash_attn")]
    sys.modules["vllm.vllm_flash_attn"] = package
    return importlib.import_module("vllm.vllm_flash_attn.flash_attn_interface")


flash_attn_interface = _load_flash_attn_interface()
from vllm.platforms import current_platform  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.platforms.interface import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    DeviceCapability,
    PlatformEnum,
)
from vllm.v1.attention.backends import fa_utils  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.v1.attention.backends.flash_attn_diffkv import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    FlashAttentionDiffKVBackend,
)
from vllm.v1.attention.backends.triton_attn_diffkv import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    TritonAttentionDiffKVBackend,
    TritonAttentionDiffKVImpl,
)

# MiMo-V2-Flash config.json: head_dim 192, v_head_dim 128 on both kinds of layers; sinks only on
# the sliding-window ones (add_swa_attention_sink_bias).
HEAD_SIZE, HEAD_SIZE_V = 192, 128
LAYERS = {"full": False, "sliding": True}
KV_DTYPE = {"auto": "auto", "fp8": "fp8"}


def pretend_device(vendor: str, capability: tuple[int, int], gfx: str = "") -> None:
    """Make vLLM's platform object report this device; the selection code reads nothing else."""
    platform_cls = type(current_platform)
    platform_cls._enum = PlatformEnum.CUDA if vendor == "nvidia" else PlatformEnum.ROCM
    cap = DeviceCapability(*capability)
    platform_cls.get_device_capability = classmethod(lambda cls, device_id=0: cap)
    platform_cls.get_device_name = classmethod(lambda cls, device_id=0: f"{vendor}-sm{cap.major}{cap.minor}")
    if vendor == "amd":
        # vllm/platforms/rocm.py asks the (absent) GPU for its gfx name at import; the attention
        # code only uses its on_gfx*() predicates, which are answered here from the gfx target.
        rocm = types.ModuleType("vllm.platforms.rocm")
        for name in ("on_gfx90a", "on_gfx11", "on_gfx12", "on_gfx1250", "on_gfx9", "on_gfx942", "on_gfx950"):
            target = name.removeprefix("on_")
            setattr(rocm, name, (lambda t=target: gfx.startswith(t)))
        sys.modules["vllm.platforms.rocm"] = rocm
    # The official CUDA image ships the FA2/FA3 extensions and FA4's CuTe DSL sources.
    available = vendor == "nvidia"
    flash_attn_interface.FA2_AVAILABLE = available
    flash_attn_interface.FA3_AVAILABLE = available
    flash_attn_interface.FA4_AVAILABLE = available


def triton_starts(kv_cache_dtype: str, has_sinks: bool) -> tuple[bool, str | None]:
    """Construct the Triton DiffKV attention implementation as a layer would; its __init__ holds
    the device checks (fp8 needs SM 8.9+, bf16 SM 8.0+)."""
    if not TritonAttentionDiffKVBackend.supports_kv_cache_dtype(kv_cache_dtype):
        return False, f"supports_kv_cache_dtype({kv_cache_dtype}) is False"
    if not TritonAttentionDiffKVBackend.supports_head_size(HEAD_SIZE):
        return False, f"supports_head_size({HEAD_SIZE}) is False"
    if has_sinks and not TritonAttentionDiffKVBackend.supports_sink():
        return False, "supports_sink() is False"
    try:
        TritonAttentionDiffKVImpl(
            num_heads=16,
            head_size=HEAD_SIZE,
            scale=HEAD_SIZE**-0.5,
            num_kv_heads=1,
            alibi_slopes=None,
            sliding_window=128 if has_sinks else None,
            kv_cache_dtype=kv_cache_dtype,
            sinks=torch.zeros(16) if has_sinks else None,
        )
    except (ValueError, NotImplementedError, AssertionError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, None


def check_layer(kv_cache_dtype: str, has_sinks: bool) -> dict[str, Any]:
    flash_ok = FlashAttentionDiffKVBackend.is_supported_on_current_device(
        head_size=HEAD_SIZE, head_size_v=HEAD_SIZE_V, has_sinks=has_sinks
    )
    quantized = kv_cache_dtype != "auto"
    # FlashAttentionImpl.__init__ checks the dtype with head_size_v = head_size (flash_attn.py);
    # the kernels then run with the real V head size.
    starts = not quantized or fa_utils.flash_attn_supports_kv_cache_dtype(
        kv_cache_dtype,
        head_size=HEAD_SIZE,
        head_size_v=HEAD_SIZE,
        has_sinks=has_sinks,
        supports_fa4_hd256=True,
    )
    reads = not quantized or fa_utils.flash_attn_supports_kv_cache_dtype(
        kv_cache_dtype, head_size=HEAD_SIZE, head_size_v=HEAD_SIZE_V, has_sinks=has_sinks
    )
    triton_ok, triton_error = triton_starts(kv_cache_dtype, has_sinks)
    return {
        "default_backend": "FLASH_ATTN_DIFFKV" if flash_ok else "TRITON_ATTN_DIFFKV",
        "flash_version": fa_utils.get_flash_attn_version(
            head_size=HEAD_SIZE, head_size_v=HEAD_SIZE_V, has_sinks=has_sinks
        ),
        "flash_starts": bool(flash_ok and starts),
        "flash_reads_kv_dtype": bool(flash_ok and reads),
        "triton_starts": triton_ok,
        "triton_error": triton_error,
    }


def main() -> int:
    out = []
    for case in json.load(sys.stdin):
        pretend_device(case["vendor"], tuple(case["capability"]), case.get("gfx", ""))
        dtype = KV_DTYPE[case["kv_cache_dtype"]]
        out.append({"layers": {name: check_layer(dtype, sinks) for name, sinks in LAYERS.items()}})
    json.dump(out, _JSON_OUT)
    _JSON_OUT.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
