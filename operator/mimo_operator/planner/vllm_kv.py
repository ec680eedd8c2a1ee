"""The KV cache figures vLLM 0.33.0 itself will arrive at, from its block allocator's rules.

Why this exists: the planner's byte arithmetic says how much memory the KV pool gets; vLLM then
cuts that pool into blocks for a hybrid model in a particular way, and logs two figures at start-up
that differ from the steady-state capacity. A person checking a running pod against the plan needs
both. The rules restated here come from vLLM 0.33.0 (and tests/unit/test_planner_vllm_kv.py runs
vLLM's own code through tests/vllm_cli/kv_allocator.py to hold them to it):

- Pages (vllm/v1/core/kv_cache_planning.py `unify_kv_cache_spec_page_size`): each layer's page is
  block_size (16) tokens x KV heads held x (K + V head dims) x dtype bytes; layers with a smaller page
  get a proportionally larger block size so every page has the same size.
- Groups (`_get_kv_cache_groups_uniform_page_size`): full-attention and sliding-window layers are
  separate kinds; the group size is the smaller layer count of the two (or the larger, when it is
  under 1.5x the smaller), and each kind is split into cdiv(layers, group size) groups. All groups
  draw block ids from one pool; one block id costs one page in each of `group size` tensors.
- Start-up log (kv_cache_utils `get_max_concurrency_for_kv_cache_config`, `update_kv_cache_capacity`):
  every request is charged cdiv(max_model_len, block) blocks per full-attention group and, per
  sliding group, cdiv(window - 1 + max_in_flight_tokens, block) + 1, where max_in_flight_tokens is
  (pipeline stages + 1) x max_num_batched_tokens under the default async scheduling with the V2
  model runner (config/vllm.py). Concurrency = blocks / charge; "GPU KV cache size" = int(concurrency
  x max_model_len) tokens.
- Steady state (KVCacheManager): once prefilled, a request holds cdiv(L, block) blocks per full group
  and only the blocks its window touches per sliding group; while a prompt is being prefilled in
  chunks of max_num_batched_tokens, its sliding groups briefly hold window + chunk tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mimo_operator.models.profile import AttentionSpec, ModelProfile
from mimo_operator.planner.memory import KV_BLOCK_SIZE, MAX_NUM_BATCHED_TOKENS, stage_layers

# vLLM's scheduler in 0.33 keeps (pipeline stages + 1) batches in flight with async scheduling on
# (the default) and the V2 model runner (the default): VllmConfig.max_concurrent_batches.
ASYNC_EXTRA_BATCHES = 1
# `_get_kv_cache_groups_uniform_page_size`: use the larger layer count as group size when it is
# below this multiple of the smaller one.
GROUP_SIZE_SLACK = 1.5


@dataclass(frozen=True)
class KvGroup:
    kind: str  # "full" or "sliding"
    layers: int  # layers of this group on the stage
    block_size: int  # tokens per block


@dataclass(frozen=True)
class VllmKvFigures:
    """What vLLM's allocator makes of one replica's (data parallel rank's) KV pools."""

    num_blocks: int
    page_bytes: int
    group_size: int  # tensors sharing each block id (on the first stage)
    groups: tuple[KvGroup, ...]
    charged_blocks_per_request: int  # what the start-up log charges a max-length request
    steady_blocks_per_request: int  # what a prefilled max-length request holds
    prompt_peak_extra_blocks: int  # extra a max-length prompt holds while its last chunk runs
    log_max_concurrency: float
    log_kv_cache_tokens: int
    fits_at_steady_state: int  # max-length requests held at once once prefilled
    fits_as_prompts: int  # max-length requests admitted when each arrives as a whole prompt


def _heads_held(spec: AttentionSpec, tensor: int) -> int:
    return max(1, spec.kv_heads // tensor)


def _page_bytes(spec: AttentionSpec, tensor: int, dtype_bytes: int, block: int) -> int:
    return block * spec.kv_bytes_per_token_per_layer(_heads_held(spec, tensor), dtype_bytes)


def _group_size(full_layers: int, sliding_layers: int) -> int:
    counts = [n for n in (full_layers, sliding_layers) if n]
    smallest, largest = min(counts), max(counts)
    return largest if largest < smallest * GROUP_SIZE_SLACK else smallest


def _window_blocks(tokens: int, window: int, block: int, max_model_len: int) -> int:
    """Blocks a sliding-window group holds once `tokens` are computed: from the block holding the
    oldest token still in the window to the block holding the newest."""
    first = max(0, min(tokens, max_model_len) - window)
    return math.ceil(tokens / block) - first // block


def vllm_kv_figures(
    profile: ModelProfile,
    tensor: int,
    pipeline: int,
    kv_pool_bytes: list[float],
    dtype_bytes: int,
    max_model_len: int,
    hybrid: bool,
    mtp: bool,
) -> VllmKvFigures:
    """vLLM's block accounting for one model replica (one data parallel rank): `kv_pool_bytes` is
    the KV pool of one GPU of each pipeline stage."""
    full_spec, sliding_spec = profile.full_attention, profile.sliding_attention
    window = sliding_spec.sliding_window or 0
    block = KV_BLOCK_SIZE
    stages = [set(r) for r in stage_layers(profile.num_layers, pipeline)]
    full_layers = [i for i in range(profile.num_layers) if i in profile.full_attention_layers]
    # The MTP block's attention is a sliding-window layer on the last stage (index num_layers).
    sliding_layers = [i for i in range(profile.num_layers) if i not in profile.full_attention_layers]
    if mtp:
        sliding_layers.append(profile.num_layers)
        stages[-1].add(profile.num_layers)
    in_flight = (pipeline + ASYNC_EXTRA_BATCHES) * MAX_NUM_BATCHED_TOKENS
    if not hybrid:
        # --disable-hybrid-kv-cache-manager: one group; every layer stores every token.
        full_token = full_spec.kv_bytes_per_token_per_layer(_heads_held(full_spec, tensor), dtype_bytes)
        sliding_token = sliding_spec.kv_bytes_per_token_per_layer(
            _heads_held(sliding_spec, tensor), dtype_bytes
        )
        blocks_per_stage = []
        for layers, pool in zip(stages, kv_pool_bytes, strict=True):
            per_token = sum(
                full_token if i in profile.full_attention_layers else sliding_token for i in layers
            )
            blocks_per_stage.append(int(pool // (block * per_token)))
        per_request = math.ceil(max_model_len / block)
        group = KvGroup("full", len(full_layers) + len(sliding_layers), block)
        return _figures(
            min(blocks_per_stage), block * full_token, 1, (group,), per_request, per_request, 0, max_model_len
        )
    full_page = _page_bytes(full_spec, tensor, dtype_bytes, block)
    sliding_page = _page_bytes(sliding_spec, tensor, dtype_bytes, block)
    page = max(full_page, sliding_page)
    size = _group_size(len(full_layers), len(sliding_layers))
    groups: list[tuple[str, list[int], int]] = []  # (kind, layers, block size)
    for kind, kind_layers, kind_page in (
        ("full", full_layers, full_page),
        ("sliding", sliding_layers, sliding_page),
    ):
        count = math.ceil(len(kind_layers) / size)
        groups += [(kind, kind_layers[i::count], block * page // kind_page) for i in range(count)]
    # Each stage's pool has as many tensors as its largest group has layers there; one block id
    # costs one page in each. Every stage then gets the smallest stage's block count.
    num_blocks = min(
        int(pool // (page * max(sum(1 for i in layers if i in stage) for _, layers, _ in groups)))
        for stage, pool in zip(stages, kv_pool_bytes, strict=True)
    )
    tensors = max(sum(1 for i in layers if i in stages[0]) for _, layers, _ in groups)
    charged = steady = peak_extra = 0
    chunk = min(MAX_NUM_BATCHED_TOKENS, max_model_len)
    for kind, _, blk in groups:
        if kind == "full":
            charged += math.ceil(max_model_len / blk)
            steady += math.ceil(max_model_len / blk)
        else:
            charged += math.ceil(min(window - 1 + in_flight, max_model_len) / blk) + 1
            held = _window_blocks(max_model_len, window, blk, max_model_len)
            steady += held
            # The last prefill chunk of a max-length prompt: window - 1 older tokens stay readable
            # while `chunk` new ones are written.
            last_start = max(0, max_model_len - 1 - chunk)
            peak = math.ceil((last_start + chunk) / blk) - max(0, last_start - (window - 1)) // blk
            peak_extra += max(0, peak - held)
    kv_groups = tuple(KvGroup(kind, len(layers), blk) for kind, layers, blk in groups)
    return _figures(num_blocks, page, tensors, kv_groups, charged, steady, peak_extra, max_model_len)


def _figures(
    num_blocks: int,
    page: int,
    tensors: int,
    groups: tuple[KvGroup, ...],
    charged: int,
    steady: int,
    peak_extra: int,
    max_model_len: int,
) -> VllmKvFigures:
    usable = max(0, num_blocks - 1)  # BlockPool keeps block 0 as its null block
    concurrency = num_blocks / charged if charged else 0.0
    return VllmKvFigures(
        num_blocks=num_blocks,
        page_bytes=page,
        group_size=tensors,
        groups=groups,
        charged_blocks_per_request=charged,
        steady_blocks_per_request=steady,
        prompt_peak_extra_blocks=peak_extra,
        log_max_concurrency=concurrency,
        log_kv_cache_tokens=int(concurrency * max_model_len),
        fits_at_steady_state=usable // steady if steady else 0,
        fits_as_prompts=max(0, (usable - peak_extra) // steady) if steady else 0,
    )
