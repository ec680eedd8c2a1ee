"""The plan as people and machines read it: one camelCase mapping shared by the CLI and the CR status."""

from __future__ import annotations

from typing import Any

from mimo_operator.planner.types import Plan, PlanError


def plan_as_dict(result: Plan | PlanError) -> dict[str, Any]:
    """camelCase keys, the same names `status.plan` uses; `feasible` says which kind of result it is."""
    if isinstance(result, PlanError):
        return {
            "feasible": False,
            "reason": result.reason,
            "message": result.message,
            "rejected": [{"layout": r.layout, "reason": r.reason} for r in result.rejected],
        }
    return {
        "feasible": True,
        "precision": result.precision,
        "gpu": result.gpu,
        "gpuVendor": result.gpu_vendor,
        "gpusPerReplica": result.gpus_per_replica,
        "gpusPerPod": result.gpus_per_pod,
        "nodesPerReplica": result.nodes_per_replica,
        "tensorParallel": result.tensor_parallel,
        "pipelineParallel": result.pipeline_parallel,
        "dataParallel": result.data_parallel,
        "expertParallel": result.expert_parallel,
        "mtp": result.mtp,
        "kvCacheDtype": result.kv_cache_dtype,
        "gpuMemoryUtilization": result.gpu_memory_utilization,
        "maxModelLen": result.max_model_len,
        "budgetGiBPerGpu": result.budget_gib_per_gpu,
        "weightsGiBPerGpu": result.weights_gib_per_gpu,
        "reservedGiBPerGpu": result.reserved_gib_per_gpu,
        "kvCacheGiBPerGpu": result.kv_cache_gib_per_gpu,
        "kvBytesPerTokenPerGpu": result.kv_bytes_per_token_per_gpu,
        "kvCacheTokens": result.kv_cache_tokens,
        "maxConcurrentAtMaxLen": result.max_concurrent_at_max_len,
        "maxConcurrentPromptsAtMaxLen": result.max_concurrent_prompts_at_max_len,
        "vllmLogKvCacheTokens": result.vllm_log_kv_cache_tokens,
        "vllmLogMaxConcurrency": result.vllm_log_max_concurrency,
        "attentionBackend": result.attention_backend,
        "attentionBackendFlag": result.attention_backend_flag,
        "validation": result.validation,
        "checkpointGiB": result.checkpoint_gib,
        "estDecodeTokensPerSecondPerGpu": result.est_decode_tokens_per_s_per_gpu,
        "summary": result.summary,
        "notes": list(result.notes),
        "rejected": [{"layout": r.layout, "reason": r.reason} for r in result.rejected],
    }


def plan_as_table(result: Plan | PlanError) -> str:
    """Plain aligned text for a terminal: the figures, then the alternatives and why they lost."""
    data = plan_as_dict(result)
    lines: list[str] = []
    if not data["feasible"]:
        lines.append(f"INFEASIBLE ({data['reason']}): {data['message']}")
    else:
        lines.append(data["summary"])
        lines.append("")
        rows = [(k, v) for k, v in data.items() if k not in {"feasible", "summary", "rejected", "notes"}]
        width = max(len(k) for k, _ in rows)
        lines.extend(f"  {k.ljust(width)}  {_cell(v)}" for k, v in rows)
        lines.extend(f"  note: {n}" for n in data["notes"])
    if data["rejected"]:
        lines.append("")
        lines.append("Rejected alternatives:")
        width = max(len(r["layout"]) for r in data["rejected"])
        lines.extend(f"  {r['layout'].ljust(width)}  {r['reason']}" for r in data["rejected"])
    return "\n".join(lines)


def plan_explanation(result: Plan) -> str:
    """The derivation page of `plan --explain`: one block per section, in reading order."""
    lines = [result.summary, ""]
    section = ""
    for heading, line in result.explain:
        if heading != section:
            lines.append(f"{heading}:")
            section = heading
        lines.append(f"  {line}")
    lines.append("")
    lines.append(f"validation: {result.validation}")
    lines.extend(f"note: {n}" for n in result.notes)
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    return str(value)
