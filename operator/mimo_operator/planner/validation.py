"""Which plans someone has run in public, and which defaults rest on a public source.

A plan the planner computes is arithmetic; a plan someone ran is evidence. Each public run below is
matched against the chosen layout, GPU and settings, and the plan says either "validated by <source>"
or "unvalidated" with what differs from the closest public run, so a person knows how far they are
from trodden ground.
"""

from __future__ import annotations

from dataclasses import dataclass

from mimo_operator.models.gpus import GpuSpec

# The public vLLM recipe for this model (vllm-project/recipes, MiMo/MiMo-V2-Flash.md): `vllm serve
# XiaomiMiMo/MiMo-V2-Flash --tensor-parallel-size 4 --gpu-memory-utilization 0.9` on NVIDIA (the
# fp8 checkpoint on four 141 GB-class GPUs), the same "run DP/TP/EP" with `--data-parallel-size 2
# --tensor-parallel-size 4 --enable-expert-parallel`, and "AMD GPU Support": TP4 on MI300X / MI325X
# / MI355X with `export VLLM_ROCM_USE_AITER=0`. It states "max is 128k" for --max-model-len and lists
# "Supports MTP" under TODO.
VLLM_RECIPE = "vLLM recipe (github.com/vllm-project/recipes, MiMo/MiMo-V2-Flash.md)"
# The model's own README (github.com/XiaomiMiMo/MiMo-V2-Flash, "Inference & Deployment"): SGLang
# with `--tp-size 8 --dp-size 2 --enable-dp-attention` on one 8-GPU node.
SGLANG_README = "SGLang launch command in the MiMo-V2-Flash README (github.com/XiaomiMiMo/MiMo-V2-Flash)"
# SGLang cookbook, MiMo-V2.5 page (docs.sglang.io/cookbook/autoregressive/Xiaomi/MiMo-V2.5),
# "Configuration Tips": "MiMo-V2.5-Pro (1.02T): B200: single node, TP=8 (verified)".
SGLANG_COOKBOOK_V25 = "SGLang cookbook, MiMo-V2.5 page (docs.sglang.io)"
# The recipe's "max is 128k": the longest context any public vLLM run of this model claims.
RECIPE_MAX_MODEL_LEN = 131072
# The vLLM recipes of the MiMo-V2.5 family (vllm-project/recipes at 8959cf64,
# models/XiaomiMiMo/MiMo-V2.5.yaml and MiMo-V2.5-Pro.yaml): `vllm serve XiaomiMiMo/MiMo-V2.5
# --tensor-parallel-size 4 ... --max-model-len auto` on "4x H200 (TP4)" (marked verified on h200), and
# MiMo-V2.5-Pro with `--tensor-parallel-size 8` on "8x H200 with TP8". `--max-model-len auto` lets
# vLLM take the longest context its KV cache holds, up to the checkpoint's 1,048,576.
VLLM_RECIPES_V25 = "vLLM recipes (github.com/vllm-project/recipes, models/XiaomiMiMo/MiMo-V2.5*.yaml)"


@dataclass(frozen=True)
class PublicRun:
    """One layout someone published a working command line for."""

    source: str
    short: str  # the source's name in the one-line summary
    gpus: frozenset[str]  # catalog keys of the GPUs it ran on (or that the source names)
    tensor: int
    data: int
    expert: bool
    engine: str = "vLLM"
    # The checkpoint it ran: a MiMo-V2-Flash run says nothing about MiMo-V2.5 or V2.5-Pro.
    model: str = "XiaomiMiMo/MiMo-V2-Flash"
    # The longest --max-model-len the source claims; None: `auto`, whatever the KV cache holds.
    max_model_len: int | None = RECIPE_MAX_MODEL_LEN


PUBLIC_RUNS: tuple[PublicRun, ...] = (
    # The recipe's NVIDIA command does not name the GPU. Its TP4 command with the fp8 checkpoint
    # (~292 GiB of weights, ~73 GiB per GPU) leaves room for a KV cache at utilization 0.9 only on
    # 141 GB-class GPUs and larger; we count H200, the common 8-GPU server it was written for, and
    # mark other GPUs unvalidated rather than guess.
    PublicRun(VLLM_RECIPE, "vLLM recipe", frozenset({"H200-141GB"}), tensor=4, data=1, expert=False),
    PublicRun(VLLM_RECIPE, "vLLM recipe", frozenset({"H200-141GB"}), tensor=4, data=2, expert=True),
    PublicRun(
        VLLM_RECIPE,
        "vLLM recipe",
        frozenset({"MI300X-192GB", "MI325X-256GB", "MI355X-288GB"}),
        tensor=4,
        data=1,
        expert=False,
    ),
    PublicRun(
        SGLANG_README,
        "SGLang, not vLLM",
        frozenset({"H100-80GB", "H200-141GB"}),
        tensor=8,
        data=1,
        expert=False,
        engine="SGLang",
    ),
    PublicRun(
        SGLANG_COOKBOOK_V25,
        "SGLang cookbook, not vLLM",
        frozenset({"B200-192GB"}),
        tensor=8,
        data=1,
        expert=False,
        engine="SGLang",
        model="XiaomiMiMo/MiMo-V2.5-Pro",
    ),
    PublicRun(
        VLLM_RECIPES_V25,
        "vLLM recipe",
        frozenset({"H200-141GB"}),
        tensor=4,
        data=1,
        expert=False,
        model="XiaomiMiMo/MiMo-V2.5",
        max_model_len=None,
    ),
    PublicRun(
        VLLM_RECIPES_V25,
        "vLLM recipe",
        frozenset({"H200-141GB"}),
        tensor=8,
        data=1,
        expert=False,
        model="XiaomiMiMo/MiMo-V2.5-Pro",
        max_model_len=None,
    ),
)


@dataclass(frozen=True)
class Validation:
    validated: bool
    text: str  # "validated by <source>" or "unvalidated: <why>"
    short: str = "unvalidated"  # for the one-line summary: "validated (vLLM recipe)" or "unvalidated"


def validation_for(
    gpu: GpuSpec,
    tensor: int,
    pipeline: int,
    data: int,
    expert: bool,
    *,
    precision: str,
    kv_cache_dtype: str,
    max_model_len: int,
    mtp: bool,
    hybrid_kv_cache: bool,
    model: str = "XiaomiMiMo/MiMo-V2-Flash",
) -> Validation:
    """Match a plan against the public runs; every setting none of them used makes it unvalidated."""
    differences: list[str] = []
    if precision != "fp8":
        differences.append(f"{precision} weights (public runs use the official fp8 checkpoint)")
    if kv_cache_dtype != "auto":
        differences.append("fp8 KV cache (public runs keep the bf16 default)")
    if mtp:
        differences.append("MTP speculative decoding (the vLLM recipe lists MTP as TODO)")
    if not hybrid_kv_cache:
        differences.append("hybrid KV cache manager off")
    layout_runs = [
        run
        for run in PUBLIC_RUNS
        if run.model == model
        and pipeline == 1
        and (run.tensor, run.data, run.expert) == (tensor, data, expert)
    ]
    matching = [run for run in layout_runs if gpu.key in run.gpus]
    # The context the closest runs claim: those of this layout and GPU, else any of this model.
    claims = [run.max_model_len for run in matching or [r for r in PUBLIC_RUNS if r.model == model]]
    stated = [claim for claim in claims if claim is not None]  # None: `auto`, no ceiling
    if stated and len(stated) == len(claims) and max_model_len > (longest := max(stated)):
        differences.insert(
            0, f"max-model-len {max_model_len} above the recipe's stated maximum of {longest // 1024}K"
        )
    if not any(run.model == model for run in PUBLIC_RUNS):
        differences.insert(0, f"no public run of {model} is recorded")
    elif not matching:
        if layout_runs:
            names = sorted({key for run in layout_runs for key in run.gpus})
            differences.insert(0, f"this layout was run publicly on {', '.join(names)}, not on {gpu.key}")
        else:
            differences.insert(0, "no public run uses this layout")
    if differences:
        return Validation(False, "unvalidated: " + "; ".join(differences))
    run = matching[0]
    suffix = "" if run.engine == "vLLM" else f" (on {run.engine}, not vLLM)"
    return Validation(True, f"validated by {run.source}{suffix}", f"validated ({run.short})")
