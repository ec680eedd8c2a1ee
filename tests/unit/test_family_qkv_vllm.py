"""Every tensor-parallel size the planner picks for MiMo-V2.5 and V2.5-Pro is one vLLM 0.33.0's loader can
shard their fused fp8 QKV projection for, with every rank holding its own heads' weights.

Both checkpoints store an attention layer's Q, K and V as one fp8 matrix pre-sharded for
num_key_value_heads ranks (4 for V2.5, 8 for Pro). The vLLM recipe for V2.5 (written for vLLM 0.21)
warns that "TP=8 hits an attention-projection shape mismatch", and the SGLang cookbook that "attention-TP
per DP group must be 4"; yet 80 GB parts cannot hold V2.5 on four GPUs, so the planner picks TP8 there.
tests/vllm_cli/qkv_shard_check.py runs vLLM 0.33.0's own sharding and forward split on CPU and checks the
rows each rank gets; this test feeds it the planner's choices for every GPU type, from the checkpoints'
own config.json fixtures.
"""

from __future__ import annotations

from typing import Any

import pytest

from mimo_operator.models.family import KNOWN_CHECKPOINTS, published_config
from mimo_operator.models.gpus import GPU_CATALOG
from mimo_operator.planner import Plan
from tests.unit.test_family import _plan
from tests.vllm_cli.probe import run_vllm_script

FUSED = [
    name
    for name in KNOWN_CHECKPOINTS
    if KNOWN_CHECKPOINTS[name].config_fixture != "mimo-v2-flash.config.json"
]


def _planned_tensor_sizes(name: str) -> set[int]:
    """The TP of the default plan, and of a 1M-token plan, on every GPU type that can hold the model."""
    sizes = set()
    for gpu in GPU_CATALOG:
        for context in ({}, {"context": {"maxModelLen": 1048576}}):
            result = _plan({"model": {"name": name}, "gpu": {"type": gpu}, **context})
            if isinstance(result, Plan):
                sizes.add(result.tensor_parallel)
    return sizes


def _cases(name: str, tensor_sizes: set[int]) -> list[tuple[str, dict[str, Any]]]:
    config = published_config(name)
    keys = {
        "full": ("num_attention_heads", "num_key_value_heads", "head_dim", "v_head_dim"),
        "sliding": ("swa_num_attention_heads", "swa_num_key_value_heads", "swa_head_dim", "swa_v_head_dim"),
    }
    kinds = {kind: tuple(config[key] for key in names) for kind, names in keys.items()}
    return [
        (
            f"{name.rsplit('/', 1)[1]} {kind} TP{tp}",
            {
                "num_heads": heads,
                "num_kv_heads": kv_heads,
                "head_dim": head_dim,
                "v_head_dim": v_head_dim,
                # mimo_v2.py: ckpt_tp=self.config.num_key_value_heads
                "ckpt_tp": config["num_key_value_heads"],
                "tp_size": tp,
            },
        )
        for kind, (heads, kv_heads, head_dim, v_head_dim) in kinds.items()
        for tp in sorted(tensor_sizes)
    ]


def test_only_v2_flash_stores_q_k_and_v_apart() -> None:
    """Which checkpoints the fused-QKV question applies to, from their own config.json."""
    layouts = {
        name: published_config(name).get("attention_projection_layout", "split") for name in KNOWN_CHECKPOINTS
    }
    assert {name for name, layout in layouts.items() if layout == "fused_qkv"} == set(FUSED)
    assert all("weight_block_size" in published_config(name)["quantization_config"] for name in FUSED)


@pytest.fixture(scope="module")
def checked() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    cases = [case for name in FUSED for case in _cases(name, _planned_tensor_sizes(name))]
    # A size vLLM must refuse (64 heads do not split over 3 ranks): the check can say no.
    control = _cases(FUSED[0], {3})[0]
    answers = run_vllm_script("qkv_shard_check.py", [case for _, case in [*cases, control]])
    return [(label, case, answer) for (label, case), answer in zip([*cases, control], answers, strict=True)]


def test_the_planner_picks_tp8_for_v2_5_on_80gb_parts() -> None:
    # The case the public recipes warn about: V2.5's 293 GiB of weights need eight 80 GB GPUs.
    result = _plan({"model": {"name": "XiaomiMiMo/MiMo-V2.5"}, "gpu": {"type": "H100-80GB"}})
    assert isinstance(result, Plan) and result.tensor_parallel == 8


def test_vllm_shards_the_fused_qkv_for_every_planned_tensor_size(
    checked: list[tuple[str, dict[str, Any], dict[str, Any]]],
) -> None:
    *planned, (control_label, _, control) = checked
    assert any(case["tp_size"] > case["ckpt_tp"] for _, case, _ in planned), (
        "TP above the chunking is covered"
    )
    refused = {label: answer for label, _, answer in planned if not answer["ok"]}
    assert not refused, refused
    assert not control["ok"] and "divisible" in control["error"], (control_label, control)
