"""Ask vLLM 0.33.0's own MiMo loader whether it can shard a checkpoint's fused fp8 QKV projection for a
tensor-parallel size, and whether every rank then holds exactly its heads' weights.

Why this exists: MiMo-V2.5 and V2.5-Pro store each attention layer's Q, K and V as one fp8 matrix,
pre-sharded for as many ranks as the config's num_key_value_heads (4 for V2.5, 8 for Pro). Public
recipes written for older vLLM report that V2.5 fails at TP8 ("fused qkv_proj checkpoint is
TP=4-interleaved"); the planner picks TP8 for V2.5 on 80 GB parts. This script runs the code vLLM
0.33.0 loads those weights with (model_executor/models/mimo_v2.py: _fused_qkv_kv_chunk_rows,
_shard_fp8_qkv_proj, and the forward's _split_qkv), on CPU with small random matrices of the real
row layout, so a test can hold the planner to what the loader accepts.

Protocol:
  stdin:  JSON list of cases {"num_heads", "num_kv_heads", "head_dim", "v_head_dim", "ckpt_tp",
          "tp_size"} for one attention kind of one checkpoint (the config's values).
  stdout: JSON list, one object per case: {"ok": bool, "error": str | null,
          "max_relative_error": float | null} — ok when every rank's shard loads and, split the way
          the forward splits it, its Q, K and V rows are the checkpoint's rows for that rank's heads
          (within fp8 re-quantisation error).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from vllm_process import json_channel  # type: ignore[import-not-found,unused-ignore]

_JSON_OUT = json_channel()  # before anything from vLLM is imported

import torch  # noqa: E402
from vllm.model_executor.models import mimo_v2  # noqa: E402

BLOCK = 128  # quantization_config.weight_block_size of both checkpoints
COLUMNS = 2 * BLOCK  # the hidden size does not change how rows are sharded; kept small for CPU


def _dequantize(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(weight.shape[0]) // BLOCK
    return weight.to(torch.float32) * scale[rows].repeat_interleave(BLOCK, dim=1)


def _check(case: dict[str, Any]) -> dict[str, Any]:
    heads, kv_heads, ckpt_tp, tp = case["num_heads"], case["num_kv_heads"], case["ckpt_tp"], case["tp_size"]
    head_dim, v_head_dim = case["head_dim"], case["v_head_dim"]
    q_chunk = heads // ckpt_tp * head_dim
    k_chunk = kv_heads // ckpt_tp * head_dim
    v_chunk = kv_heads // ckpt_tp * v_head_dim
    rows_per_chunk = q_chunk + k_chunk + v_chunk
    generator = torch.Generator().manual_seed(0)
    dense = torch.rand((ckpt_tp * rows_per_chunk, COLUMNS), generator=generator) * 2 - 1
    weight = dense.to(torch.float8_e4m3fn)
    chunk_scale_rows = -(-rows_per_chunk // BLOCK)
    scale = torch.rand((ckpt_tp * chunk_scale_rows, COLUMNS // BLOCK), generator=generator) + 0.5
    # The checkpoint's values, as its per-chunk scales say.
    row = torch.arange(weight.shape[0])
    scale_index = (row // rows_per_chunk) * chunk_scale_rows + (row % rows_per_chunk) // BLOCK
    full = weight.to(torch.float32) * scale[scale_index].repeat_interleave(BLOCK, dim=1)

    kv_chunk_rows = mimo_v2._fused_qkv_kv_chunk_rows(heads, kv_heads, head_dim, v_head_dim, tp, ckpt_tp)
    q_size = heads // tp * head_dim
    kv_per_rank = max(1, kv_heads // tp)
    k_size, v_size = kv_per_rank * head_dim, kv_per_rank * v_head_dim
    worst = 0.0
    try:
        for rank in range(tp):
            w_rank, s_rank = mimo_v2._shard_fp8_qkv_proj(
                weight, scale, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
                v_head_dim=v_head_dim, tp_rank=rank, tp_size=tp, ckpt_tp=ckpt_tp,
                kv_chunk_rows=kv_chunk_rows,
            )  # fmt: skip
            got = _dequantize(w_rank, s_rank).T  # rows on the last axis, as the forward's output
            q, k, v = mimo_v2._split_qkv(got, q_size, k_size, v_size, kv_chunk_rows)
            expected = _expected_rows(full, case, rank, rows_per_chunk, q_chunk, k_chunk)
            for part, want in zip((q, k, v), expected, strict=True):
                if part.shape != want.T.shape:
                    return {
                        "ok": False,
                        "error": f"rank {rank}: shape {tuple(part.shape)}",
                        "max_relative_error": None,
                    }
                error = float((part - want.T).norm() / want.norm())
                worst = max(worst, error)
    except (AssertionError, ValueError, RuntimeError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "max_relative_error": None}
    # fp8 e4m3 keeps 3 mantissa bits: re-quantised rows differ by a few percent, wrong rows by ~100%.
    return {"ok": worst < 0.1, "error": None, "max_relative_error": worst}


def _expected_rows(
    full: torch.Tensor, case: dict[str, Any], rank: int, rows_per_chunk: int, q_chunk: int, k_chunk: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The checkpoint rows of the Q, K and V heads vLLM assigns to `rank` (KV heads replicated when
    there are fewer than ranks), in head order."""
    heads, kv_heads, ckpt_tp, tp = case["num_heads"], case["num_kv_heads"], case["ckpt_tp"], case["tp_size"]
    head_dim, v_head_dim = case["head_dim"], case["v_head_dim"]
    q_ids = range(rank * (heads // tp), (rank + 1) * (heads // tp))
    if tp <= kv_heads:
        kv_ids = list(range(rank * (kv_heads // tp), (rank + 1) * (kv_heads // tp)))
    else:
        kv_ids = [rank // (tp // kv_heads)]
    q_per, kv_per = heads // ckpt_tp, kv_heads // ckpt_tp

    def rows(start: int, size: int) -> torch.Tensor:
        return full[start : start + size]

    q = [rows((h // q_per) * rows_per_chunk + (h % q_per) * head_dim, head_dim) for h in q_ids]
    k = [rows((h // kv_per) * rows_per_chunk + q_chunk + (h % kv_per) * head_dim, head_dim) for h in kv_ids]
    v = [
        rows((h // kv_per) * rows_per_chunk + q_chunk + k_chunk + (h % kv_per) * v_head_dim, v_head_dim)
        for h in kv_ids
    ]
    return torch.cat(q), torch.cat(k), torch.cat(v)


def main() -> None:
    cases = json.load(sys.stdin)
    json.dump([_check(case) for case in cases], _JSON_OUT)


if __name__ == "__main__":
    main()
