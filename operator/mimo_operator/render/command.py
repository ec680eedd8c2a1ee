"""The `vllm serve` command line: every flag derived from the plan and the spec, in a stable order.

Only flags that exist in the pinned vLLM release are emitted (tests parse each rendered line with that
release's own argument parser). Removed flags such as `--swap-space` or `--disable-log-requests`,
and `--quantization fp8` (the checkpoint carries its own quantization config), are never written.
"""

from __future__ import annotations

import json

from mimo_operator.api import MimoDeployment, constants
from mimo_operator.planner import Plan
from mimo_operator.render.config import RenderConfig
from mimo_operator.render.weights import fetch_mode, vllm_model_arg

# vLLM reads the API key from this variable as well as from --api-key; the env form keeps the
# secret out of the pod spec and out of `ps` output.
API_KEY_ENV = "VLLM_API_KEY"
NODE_RANK_ENV = "NODE_RANK"
# The MiMo family's own parsers, registered in vLLM 0.33 under `mimo` and shared by every member
# (models/family.py ServingTraits; vLLM 0.33.0 vllm/reasoning/__init__.py and vllm/tool_parsers/__init__.py).
REASONING_PARSER = "mimo"
TOOL_CALL_PARSER = "mimo"
# vLLM uses the first of the three MTP blocks; one speculative token per step (vLLM recipe).
MTP_CONFIG = {"method": "mtp", "num_speculative_tokens": 1}


def literal(arg: str) -> str:
    """A user's string as a container argument: Kubernetes expands `$(VAR)` in args from the
    container's environment, so `--chat-template=$(HF_TOKEN)` would put the token into vLLM's
    command line. `$$(` is how Kubernetes spells a literal `$(`."""
    return arg.replace("$(", "$$(")


def served_model_name(md: MimoDeployment) -> str:
    return md.spec.model.served_name or md.metadata.name


def vllm_serve_args(
    md: MimoDeployment, plan: Plan, config: RenderConfig, master_addr: str | None = None
) -> list[str]:
    """Arguments after `vllm serve`, model first. Multi-node replicas pass `master_addr` and take
    their node rank from $(NODE_RANK), which Kubernetes expands from the pod's index."""
    spec = md.spec
    args = [literal(vllm_model_arg(md, config)), "--served-model-name", served_model_name(md)]
    if spec.model.revision and fetch_mode(md) != "job":  # a fetched copy is that revision already
        args += ["--revision", spec.model.revision]
    args += ["--download-dir", config.model_mount_path, "--trust-remote-code"]
    args += ["--host", "0.0.0.0", "--port", str(constants.HTTP_PORT)]
    args += ["--tensor-parallel-size", str(plan.tensor_parallel)]
    if plan.pipeline_parallel > 1:
        args += ["--pipeline-parallel-size", str(plan.pipeline_parallel)]
    if plan.data_parallel > 1:
        args += ["--data-parallel-size", str(plan.data_parallel)]
    if plan.expert_parallel:
        args.append("--enable-expert-parallel")
    args += ["--max-model-len", str(plan.max_model_len)]
    args += ["--gpu-memory-utilization", f"{plan.gpu_memory_utilization:g}"]
    if plan.kv_cache_dtype == "fp8":
        args += ["--kv-cache-dtype", "fp8"]
    if plan.attention_backend_flag and plan.attention_backend:
        # vLLM's default DiffKV backend cannot run this model's attention with this KV cache on this
        # GPU (planner/attention.py); mimo_v2.py honours a requested `*_DIFFKV` backend for every layer.
        args += ["--attention-backend", plan.attention_backend]
    if plan.mtp:
        args += ["--speculative-config", json.dumps(MTP_CONFIG, separators=(",", ":"))]
    args += ["--reasoning-parser", REASONING_PARSER]
    args += ["--enable-auto-tool-choice", "--tool-call-parser", TOOL_CALL_PARSER]
    if spec.thinking.default:
        args += [
            "--default-chat-template-kwargs",
            json.dumps({"enable_thinking": True}, separators=(",", ":")),
        ]
    limits = spec.model.multimodal_limits
    if limits is not None:
        # vLLM 0.33.0 skips building an encoder whose modalities are all limited to 0
        # (SupportsMultiModal._mark_tower_model); the plan leaves those encoders out too.
        chosen = limits.model_dump(exclude_none=True)
        args += ["--limit-mm-per-prompt", json.dumps(chosen, separators=(",", ":"))]
    if master_addr is not None:
        args += group_args(plan, master_addr)
    return args + [literal(arg) for arg in spec.serving.extra_args]


def data_parallel_per_node(plan: Plan) -> int:
    """Data parallel ranks on each node of a replica whose data parallel ranks span nodes, else 0."""
    if plan.nodes_per_replica == 1 or plan.data_parallel == 1:
        return 0
    return plan.data_parallel // plan.nodes_per_replica


def group_args(plan: Plan, head: str) -> list[str]:
    """How the pods of a multi-node replica find each other (vLLM 0.33.0 vllm/engine/arg_utils.py,
    create_engine_config). Data parallel ranks across nodes: every node runs its share of engines
    (`--data-parallel-size-local`) and dials the head's RPC port; pipeline stages across nodes: one
    torch.distributed group of `--nnodes` ranks around the head's master port."""
    local = data_parallel_per_node(plan)
    if local:
        return [
            "--data-parallel-size-local",
            str(local),
            "--data-parallel-address",
            head,
            "--data-parallel-rpc-port",
            str(constants.DP_RPC_PORT),
        ]
    return [
        "--nnodes",
        str(plan.nodes_per_replica),
        "--node-rank",
        f"$({NODE_RANK_ENV})",
        "--master-addr",
        head,
        "--master-port",
        str(constants.MASTER_PORT),
    ]


def group_entrypoint(plan: Plan) -> str:
    """Pod 0 of a multi-node group serves the API; the others join headless, data parallel ones with
    the first rank they run (`--data-parallel-start-rank`: node rank x ranks per node). One StatefulSet
    template serves every rank, so a short shell line decides by rank; the arguments stay a plain list."""
    worker = 'exec vllm serve "$@" --headless'
    local = data_parallel_per_node(plan)
    if local:
        worker += f' --data-parallel-start-rank "$(({NODE_RANK_ENV} * {local}))"'
    return f'if [ "${NODE_RANK_ENV}" = "0" ]; then exec vllm serve "$@"; else {worker}; fi'
