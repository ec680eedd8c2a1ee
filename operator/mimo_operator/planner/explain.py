"""The derivation behind one plan, as the lines `mimo-operator plan --explain` prints.

Why this exists: a plan is a handful of numbers; a sceptical engineer wants to see where each comes
from before trusting it with a 300B-parameter model: bytes per parameter group on one GPU, the parts
of the reserve, the KV cost of each layer kind, and the figures vLLM will log. Everything here is
read from the same functions the planner used, so the page cannot disagree with the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mimo_operator.models.gpus import GIB, MIB
from mimo_operator.models.profile import ModelProfile
from mimo_operator.planner import memory
from mimo_operator.planner.types import Layout, PlanRequest
from mimo_operator.planner.vllm_kv import VllmKvFigures

Lines = tuple[tuple[str, str], ...]


class _StageLike(Protocol):
    @property
    def weights(self) -> memory.WeightSplit: ...
    @property
    def reserve(self) -> float: ...
    @property
    def free(self) -> float: ...
    @property
    def kv(self) -> memory.KvLayout: ...


def _gib(value: float) -> str:
    return f"{value / GIB:8.2f} GiB"


def derivation(
    request: PlanRequest,
    profile: ModelProfile,
    layout: Layout,
    mtp: bool,
    max_model_len: int,
    stages: Sequence[_StageLike],
    figures: VllmKvFigures,
) -> Lines:
    """(section, line) pairs, in reading order."""
    out: list[tuple[str, str]] = []
    budget = request.gpu.memory_mib * MIB * request.gpu_memory_utilization
    out.append(
        (
            "budget",
            f"{request.gpu.key}: {request.gpu.memory_mib} MiB reported by the driver x utilization "
            f"{request.gpu_memory_utilization:g} = {budget / GIB:.2f} GiB per GPU",
        )
    )
    for stage, st in enumerate(stages):
        where = f"stage {stage}" if layout.pipeline > 1 else "each GPU"
        out.extend(_weights(request, profile, layout, mtp, stage, where))
        out.append(
            ("reserve", f"{where}: runtime (CUDA context, NCCL, cuBLAS) {_gib(memory.RUNTIME_GIB * GIB)}")
        )
        out.append(
            ("reserve", f"{where}: CUDA graphs                         {_gib(memory.CUDA_GRAPH_GIB * GIB)}")
        )
        out.append(
            (
                "reserve",
                f"{where}: activation peak of a {memory.MAX_NUM_BATCHED_TOKENS}-token profiling pass "
                f"{_gib(memory.activation_bytes(profile, layout))}",
            )
        )
        out.append(
            (
                "kv pool",
                f"{where}: {budget / GIB:.2f} - weights {st.weights.total / GIB:.2f} - reserve "
                f"{st.reserve / GIB:.2f} = {st.free / GIB:.2f} GiB for the KV cache",
            )
        )
        out.extend(_kv_layers(request, profile, layout, mtp, stage, where))
    rank = "each data parallel rank" if layout.data > 1 else "the replica"
    out.extend(_vllm_blocks(figures, rank, max_model_len))
    return tuple(out)


def _weights(
    request: PlanRequest, profile: ModelProfile, layout: Layout, mtp: bool, stage: int, where: str
) -> list[tuple[str, str]]:
    lines = []
    total = 0.0
    for group in profile.param_groups:
        count = memory.instances_on_stage(group, profile, layout, stage, mtp)
        if not count:
            continue
        fmt = group.storage_for(request.precision)
        size = count * group.params_per_instance * fmt.bytes_per_param
        share = size / memory.shard_divisor(group, layout)
        total += share
        lines.append(
            (
                "weights",
                f"{where}: {group.name:<18} {count:>2} x {group.params_per_instance:>13,} params, "
                f"{fmt.value:<13} / {memory.shard_divisor(group, layout):<2} -> {_gib(share)}",
            )
        )
    lines.append(("weights", f"{where}: total {_gib(total)}"))
    return lines


def _kv_layers(
    request: PlanRequest, profile: ModelProfile, layout: Layout, mtp: bool, stage: int, where: str
) -> list[tuple[str, str]]:
    dtype_bytes = 1 if request.kv_cache_dtype == "fp8" else 2
    layers = memory.stage_layers(profile.num_layers, layout.pipeline)[stage]
    full = sum(1 for i in layers if i in profile.full_attention_layers)
    sliding = len(layers) - full + (1 if mtp and stage == layout.pipeline - 1 else 0)
    lines = []
    for kind, count, spec in (
        ("full-attention", full, profile.full_attention),
        ("sliding", sliding, profile.sliding_attention),
    ):
        held = max(1, spec.kv_heads // layout.tensor)
        per_token = spec.kv_bytes_per_token_per_layer(held, dtype_bytes)
        window = f" of the last {spec.sliding_window} tokens" if spec.sliding_window else ""
        lines.append(
            (
                "kv per layer",
                f"{where}: {count} {kind} layers x {held} KV head(s) x "
                f"(K {spec.k_head_dim} + V {spec.v_head_dim}) x {dtype_bytes} B = "
                f"{count * per_token:,} B per token{window}",
            )
        )
    return lines


def _vllm_blocks(fig: VllmKvFigures, where: str, max_model_len: int) -> list[tuple[str, str]]:
    kinds: dict[tuple[str, int], list[str]] = {}
    for g in fig.groups:
        kinds.setdefault((g.kind, g.block_size), []).append(str(g.layers))
    groups = "; ".join(
        f"{kind} {', '.join(counts)} layers x {block}-token blocks" for (kind, block), counts in kinds.items()
    )
    return [
        (
            "vllm blocks",
            f"{where}: pages of {fig.page_bytes:,} B, {fig.group_size} per block id -> "
            f"{fig.num_blocks:,} blocks; groups: {groups}",
        ),
        (
            "vllm log",
            f"{where}: each request charged {fig.charged_blocks_per_request:,} blocks at start-up -> "
            f'"GPU KV cache size: {fig.log_kv_cache_tokens:,} tokens", '
            f'"Maximum concurrency for {max_model_len:,} tokens per request: {fig.log_max_concurrency:.2f}x"',
        ),
        (
            "vllm steady state",
            f"{where}: a prefilled max-length request holds {fig.steady_blocks_per_request:,} blocks -> "
            f"{fig.fits_at_steady_state} at once; {fig.fits_as_prompts} when each arrives as a max-length "
            f"prompt (its last chunk briefly holds {fig.prompt_peak_extra_blocks} more)",
        ),
    ]
