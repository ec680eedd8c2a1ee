"""Drive vLLM 0.33.0's own KV cache allocator on CPU for a hybrid-attention model layout.

Why this exists: the planner promises how many max-length requests a replica's KV cache holds and
what vLLM will log at start-up. vLLM decides both with its KV cache spec classes, its grouping and
page-size unification (vllm/v1/core/kv_cache_planning.py), its capacity formula
(kv_cache_utils.get_kv_cache_capacity, the source of "GPU KV cache size: N tokens, Maximum
concurrency for L tokens per request: X") and its KVCacheManager. This script runs exactly those,
so tests compare the planner with vLLM rather than with a formula we typed twice.

It runs under the cached vLLM venv's interpreter (tests/vllm_cli/probe.py starts it), never the
project's, and needs no GPU: KV cache planning is bookkeeping of block ids, and the manager never
touches device memory. The one stand-in is the model config: vLLM would read the checkpoint's
config.json from Hugging Face, which tests cannot reach, so `max_model_len` and the layer layout come
from the case instead; every other config object is vLLM's own, built with vLLM's defaults.

Input (stdin): a JSON list of cases. Each case describes one model layout and one replica rank:

  {
    "num_layers": 48,                       # decoder layers
    "full_attention_layers": [0, 5, ...],   # the others are sliding-window layers
    "extra_sliding_layers": 0,              # e.g. 1 MTP block (a sliding-window layer, last PP stage)
    "full": {"num_kv_heads": 4, "head_size": 192, "head_size_v": 128},
    "sliding": {"num_kv_heads": 8, "head_size": 192, "head_size_v": 128, "window": 128},
    "tensor_parallel_size": 4, "pipeline_parallel_size": 1,
    "kv_cache_dtype": "auto" | "fp8",       # auto = the model dtype, bfloat16
    "block_size": 16,                       # vLLM's default (CacheConfig.DEFAULT_BLOCK_SIZE)
    "max_model_len": 262144,
    "max_num_batched_tokens": 8192,
    "available_memory": [bytes, ...],       # KV bytes per GPU, one entry per PP stage
    "hybrid_kv_cache_manager": true,        # false = --disable-hybrid-kv-cache-manager
    "attention_backend": "FLASH_ATTN_DIFFKV", # or TRITON_ATTN_DIFFKV: decides the memory layout
    "probe": true                           # also admit max-length requests until vLLM refuses
  }

Heads per GPU follow vLLM's rule max(1, num_kv_heads // tensor_parallel_size); layers split over
pipeline stages with vLLM's get_pp_indices. Output (stdout): a JSON list, one object per case:

  {
    "num_blocks": int,                       # blocks in the pool (same on every stage)
    "groups": [{"kind": "full"|"sliding", "layers": n, "block_size": b, "page_size_bytes": p}],
    "log_kv_cache_tokens": int,              # "GPU KV cache size: N tokens"
    "log_max_concurrency": float,            # "Maximum concurrency for L tokens per request: X"
    "blocks_per_request_at_admission": int,  # what the log's concurrency charges each request
    "steady_blocks_per_request": int,        # blocks one max-length request holds once prefilled
    "admitted_as_prompts": int | null,       # max-length prompts prefilled (chunked) before refusal
    "fits_at_steady_state": int | null       # usable blocks // steady_blocks_per_request
  }

The probe runs on the first pipeline stage's config (vLLM makes every stage's block count equal).
"""

from __future__ import annotations

import json
import math
import sys
from types import SimpleNamespace
from typing import Any

from vllm_process import json_channel  # type: ignore[import-not-found,unused-ignore]

_JSON_OUT = json_channel()  # before anything from vLLM is imported

import torch  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.config import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    AttentionConfig,
    CacheConfig,
    ParallelConfig,
    SchedulerConfig,
    VllmConfig,
)
from vllm.distributed.utils import get_pp_indices  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.model_executor.models.registry import ModelRegistry  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.sampling_params import SamplingParams  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.v1.attention.backends.flash_attn_diffkv import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    FlashAttentionDiffKVBackend,
)
from vllm.v1.attention.backends.triton_attn_diffkv import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    TritonAttentionDiffKVBackend,
)
from vllm.v1.attention.backends.utils import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    get_supported_kv_cache_layouts,
    record_kv_cache_layout,
    resolve_kv_cache_layout,
)
from vllm.v1.core.kv_cache_manager import KVCacheManager  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.v1.core.kv_cache_planning import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    get_global_kv_cache_groups,
    get_kv_cache_configs,
)
from vllm.v1.core.kv_cache_utils import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    generate_scheduler_kv_cache_config,
    get_kv_cache_capacity,
)
from vllm.v1.kv_cache_interface import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    FullAttentionSpec,
    SlidingWindowSpec,
)
from vllm.v1.request import Request  # type: ignore[import-not-found,unused-ignore]  # noqa: E402

TORCH_DTYPE = {"auto": torch.bfloat16, "fp8": torch.float8_e4m3fn}
ARCHITECTURE = "MiMoV2FlashForCausalLM"  # config.json "architectures"
BACKENDS = {
    "FLASH_ATTN_DIFFKV": FlashAttentionDiffKVBackend,
    "TRITON_ATTN_DIFFKV": TritonAttentionDiffKVBackend,
}


class _Config(SimpleNamespace):
    """The attributes of a VllmConfig the KV planning code reads; any derived value it asks for
    (max_in_flight_tokens, num_prefill_lookahead_tokens, ...) is computed by VllmConfig's own
    property code on these attributes."""

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(VllmConfig, name, None)
        if isinstance(attribute, property) and attribute.fget is not None:
            return attribute.fget(self)
        raise AttributeError(name)


def vllm_config_for(case: dict[str, Any]) -> Any:
    """vLLM's own config objects with the case's settings; only the model config is a stand-in."""
    max_len = case["max_model_len"]
    architecture = case.get("architecture", ARCHITECTURE)
    scheduler = SchedulerConfig(
        max_model_len=max_len,
        is_encoder_decoder=False,
        max_num_batched_tokens=case["max_num_batched_tokens"],
        disable_hybrid_kv_cache_manager=not case.get("hybrid_kv_cache_manager", True),
    )
    # vllm serve's default since 0.2x: async scheduling on (VllmConfig.__post_init__ turns it on
    # when nothing is incompatible), which doubles the tokens in flight per request.
    scheduler.async_scheduling = True
    cfg = _Config(
        model_config=SimpleNamespace(
            max_model_len=max_len,
            original_max_model_len=max_len,
            is_diffusion=False,
            architectures=[architecture],
            # Whether the model class owns its KV cache grouping, asked of vLLM's model registry.
            supports_kv_cache_grouping=ModelRegistry.models[architecture]
            .inspect_model_cls()
            .supports_kv_cache_grouping,
        ),
        cache_config=CacheConfig(block_size=case["block_size"], cache_dtype=case["kv_cache_dtype"]),
        scheduler_config=scheduler,
        parallel_config=ParallelConfig(
            tensor_parallel_size=case["tensor_parallel_size"],
            pipeline_parallel_size=case["pipeline_parallel_size"],
        ),
        attention_config=AttentionConfig(),
        speculative_config=None,
        kv_transfer_config=None,
    )
    # The V2 model runner is the default in 0.33 (VllmConfig.use_v2_model_runner: nothing in a
    # plain `vllm serve` of this model is on its unsupported list).
    cfg.use_v2_model_runner = True
    return cfg


def stage_specs(case: dict[str, Any]) -> list[dict[str, Any]]:
    """One {layer name: KV cache spec} per pipeline stage, as the workers would report them."""
    tp, pp = case["tensor_parallel_size"], case["pipeline_parallel_size"]
    dtype = TORCH_DTYPE[case["kv_cache_dtype"]]
    block = case["block_size"]
    full, sliding = case["full"], case["sliding"]
    full_layers = set(case["full_attention_layers"])

    def full_spec() -> Any:
        return FullAttentionSpec(
            block_size=block,
            num_kv_heads=max(1, full["num_kv_heads"] // tp),
            head_size=full["head_size"],
            head_size_v=full["head_size_v"],
            dtype=dtype,
        )

    def sliding_spec() -> Any:
        return SlidingWindowSpec(
            block_size=block,
            num_kv_heads=max(1, sliding["num_kv_heads"] // tp),
            head_size=sliding["head_size"],
            head_size_v=sliding["head_size_v"],
            dtype=dtype,
            sliding_window=sliding["window"],
        )

    stages = []
    for rank in range(pp):
        start, end = get_pp_indices(case["num_layers"], rank, pp)
        specs = {
            f"model.layers.{i}.self_attn.attn": full_spec() if i in full_layers else sliding_spec()
            for i in range(start, end)
        }
        if rank == pp - 1:
            for j in range(case.get("extra_sliding_layers", 0)):
                specs[f"model.mtp.layers.{j}.self_attn.attn"] = sliding_spec()
        stages.append(specs)
    return stages


def probe(cfg: Any, scheduler_cfg: Any, case: dict[str, Any]) -> tuple[int, int, int]:
    """Admit max-length prompts one after another, each prefilled in chunks of
    max_num_batched_tokens as vLLM's scheduler does, until the manager refuses a chunk.
    Returns (prompts fully admitted, blocks one finished prompt holds, usable blocks)."""
    max_len = case["max_model_len"]
    chunk = case["max_num_batched_tokens"]
    manager = KVCacheManager(
        kv_cache_config=scheduler_cfg,
        max_model_len=max_len,
        max_in_flight_tokens=cfg.max_in_flight_tokens,
        enable_caching=False,
        # The scheduler's granularity: the LCM of the groups' block sizes (kv_cache_coordinator.py).
        scheduler_block_size=math.lcm(*(g.kv_cache_spec.block_size for g in scheduler_cfg.kv_cache_groups)),
        hash_block_size=case["block_size"],
    )
    pool = manager.block_pool
    usable = pool.get_num_free_blocks()
    admitted = 0
    steady = 0
    params = SamplingParams(max_tokens=1)
    while True:
        request = Request(f"r{admitted}", [0] * (max_len - 1), params, None)
        before = pool.get_num_free_blocks()
        while request.num_computed_tokens < request.num_tokens:
            step = min(chunk, request.num_tokens - request.num_computed_tokens)
            if manager.allocate_slots(request, step) is None:
                return admitted, steady, usable
            request.num_computed_tokens += step
        # The first decode step: one more token, which also frees blocks that left the window.
        if manager.allocate_slots(request, 1) is None:
            return admitted, steady, usable
        request.num_computed_tokens += 1
        admitted += 1
        steady = steady or before - pool.get_num_free_blocks()


def resolve_layout(cfg: Any, specs: list[dict[str, Any]], backend_name: str) -> str:
    """The KV cache memory layout the engine core would pick for these backends and specs."""
    backend = BACKENDS[backend_name]
    names = [layout.name for layout in get_supported_kv_cache_layouts([backend])]
    layout = resolve_kv_cache_layout(cfg, [names], [spec for stage in specs for spec in stage.values()])
    record_kv_cache_layout(cfg.cache_config, layout.name)
    return str(layout.name)


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    cfg = vllm_config_for(case)
    specs = stage_specs(case)
    layout = resolve_layout(cfg, specs, case.get("attention_backend", "FLASH_ATTN_DIFFKV"))
    groups = get_global_kv_cache_groups(cfg, specs)
    configs = get_kv_cache_configs(cfg, specs, case["available_memory"], groups)
    scheduler_cfg = generate_scheduler_kv_cache_config(configs)
    tokens, concurrency = get_kv_cache_capacity(cfg, scheduler_cfg)
    charged = round(scheduler_cfg.num_blocks / concurrency) if concurrency else 0
    out: dict[str, Any] = {
        "kv_cache_layout": layout,
        "num_blocks": scheduler_cfg.num_blocks,
        "groups": [
            {
                "kind": "sliding" if isinstance(g.kv_cache_spec, SlidingWindowSpec) else "full",
                "layers": len(g.layer_names),
                "block_size": g.kv_cache_spec.block_size,
                "page_size_bytes": g.kv_cache_spec.page_size_bytes,
            }
            for g in scheduler_cfg.kv_cache_groups
        ],
        "log_kv_cache_tokens": tokens,
        "log_max_concurrency": concurrency,
        "blocks_per_request_at_admission": charged,
        "steady_blocks_per_request": None,
        "admitted_as_prompts": None,
        "fits_at_steady_state": None,
    }
    if case.get("probe"):
        admitted, steady, usable = probe(cfg, scheduler_cfg, case)
        out["admitted_as_prompts"] = admitted
        out["steady_blocks_per_request"] = steady or None
        out["fits_at_steady_state"] = usable // steady if steady else 0
    return out


def main() -> int:
    json.dump([run_case(case) for case in json.load(sys.stdin)], _JSON_OUT)
    _JSON_OUT.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
