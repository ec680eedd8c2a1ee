"""The plan as people and machines read it: one camelCase mapping shared by the CLI and the CR status."""

from __future__ import annotations

from typing import Any

from mimo_operator.planner.coldstart import ColdStart
from mimo_operator.planner.types import Plan, PlanError


def cold_start_as_dict(cold: ColdStart) -> dict[str, Any]:
    """The names `status.plan.coldStart` uses."""
    return {
        "fetchedBy": cold.fetched_by,
        "downloadGiB": cold.download_gib,
        "downloadRateMiBps": cold.download_rate_mib_per_s,
        "downloadSeconds": cold.download_seconds,
        "loadSeconds": cold.load_seconds,
        "engineStartSeconds": cold.engine_start_seconds,
        "firstStartSeconds": cold.first_start_seconds,
        "newPodSeconds": cold.new_pod_seconds,
        "summary": cold.summary,
    }


def plan_as_dict(outcome: Plan | PlanError, cold: ColdStart | None = None) -> dict[str, Any]:
    """camelCase keys, the same names `status.plan` uses; `feasible` says which kind of outcome it is."""
    if isinstance(outcome, PlanError):
        return {
            "feasible": False,
            "reason": outcome.reason,
            "message": outcome.message,
            "rejected": [{"layout": r.layout, "reason": r.reason} for r in outcome.rejected],
        }
    plan = outcome
    return {
        "feasible": True,
        "precision": plan.precision,
        "gpu": plan.gpu,
        "gpuVendor": plan.gpu_vendor,
        "gpusPerReplica": plan.gpus_per_replica,
        "gpusPerPod": plan.gpus_per_pod,
        "nodesPerReplica": plan.nodes_per_replica,
        "tensorParallel": plan.tensor_parallel,
        "pipelineParallel": plan.pipeline_parallel,
        "dataParallel": plan.data_parallel,
        "expertParallel": plan.expert_parallel,
        "mtp": plan.mtp,
        "kvCacheDtype": plan.kv_cache_dtype,
        "gpuMemoryUtilization": plan.gpu_memory_utilization,
        "maxModelLen": plan.max_model_len,
        "budgetGiBPerGpu": plan.budget_gib_per_gpu,
        "weightsGiBPerGpu": plan.weights_gib_per_gpu,
        "reservedGiBPerGpu": plan.reserved_gib_per_gpu,
        "kvCacheGiBPerGpu": plan.kv_cache_gib_per_gpu,
        "kvBytesPerTokenPerGpu": plan.kv_bytes_per_token_per_gpu,
        "kvCacheTokens": plan.kv_cache_tokens,
        "maxConcurrentAtMaxLen": plan.max_concurrent_at_max_len,
        "maxConcurrentPromptsAtMaxLen": plan.max_concurrent_prompts_at_max_len,
        "vllmLogKvCacheTokens": plan.vllm_log_kv_cache_tokens,
        "vllmLogMaxConcurrency": plan.vllm_log_max_concurrency,
        "attentionBackend": plan.attention_backend,
        "attentionBackendFlag": plan.attention_backend_flag,
        "validation": plan.validation,
        "checkpointGiB": plan.checkpoint_gib,
        "estDecodeTokensPerSecondPerGpu": plan.est_decode_tokens_per_s_per_gpu,
        "summary": plan.summary,
        "notes": list(plan.notes),
        "rejected": [{"layout": r.layout, "reason": r.reason} for r in plan.rejected],
        **({"coldStart": cold_start_as_dict(cold)} if cold is not None else {}),
    }


def plan_as_table(outcome: Plan | PlanError, cold: ColdStart | None = None) -> str:
    """Plain aligned text for a terminal: the figures, then the alternatives and why they lost."""
    data = plan_as_dict(outcome, cold)
    lines: list[str] = []
    if not data["feasible"]:
        lines.append(f"INFEASIBLE ({data['reason']}): {data['message']}")
    else:
        lines.append(data["summary"])
        lines.append("")
        skipped = {"feasible", "summary", "rejected", "notes", "coldStart"}
        rows = [(k, v) for k, v in data.items() if k not in skipped]
        width = max(len(k) for k, _ in rows)
        lines.extend(f"  {k.ljust(width)}  {_cell(v)}" for k, v in rows)
        if cold is not None:
            lines.append(f"  {'coldStart'.ljust(width)}  {cold.summary}")
        lines.extend(f"  note: {n}" for n in data["notes"])
    if data["rejected"]:
        lines.append("")
        lines.append("Rejected alternatives:")
        width = max(len(r["layout"]) for r in data["rejected"])
        lines.extend(f"  {r['layout'].ljust(width)}  {r['reason']}" for r in data["rejected"])
    return "\n".join(lines)


def plan_explanation(plan: Plan) -> str:
    """The derivation page of `plan --explain`: one block per section, in reading order."""
    lines = [plan.summary, ""]
    section = ""
    for heading, line in plan.explain:
        if heading != section:
            lines.append(f"{heading}:")
            section = heading
        lines.append(f"  {line}")
    lines.append("")
    lines.append(f"validation: {plan.validation}")
    lines.extend(f"note: {n}" for n in plan.notes)
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    return str(value)
