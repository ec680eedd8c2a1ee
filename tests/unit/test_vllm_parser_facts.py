"""Pin the vLLM 0.33.0 command-line facts the renderer relies on, against vLLM's real parser.

Why this exists: /work/shared/design/model-facts.md lists the `vllm serve` flags we emit, the ones
we must never emit, and defaults the planner leans on. Those were read off docs and source; here
vLLM's own parser (tests/vllm_cli, a cached venv outside git) confirms each one, so bumping the
pinned vLLM fails loudly where a fact stops holding instead of in a crash-looping GPU pod.

All command lines go to vLLM in one batch (one subprocess: importing vLLM costs seconds).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from tests.unit.kubelet import exec_argv, statefulset_pods
from tests.vllm_cli.harness import ServeParse, parse_serve_args, registered_parsers, vllm_source_dir

MODEL = "XiaomiMiMo/MiMo-V2-Flash"
MTP = {"method": "mtp", "num_speculative_tokens": 1}
THINKING = {"enable_thinking": True}

# flag -> (values after the flag, argparse dest, expected parsed value). Values are the ones a
# rendered MiMo deployment would carry (TP8 x PP2 over two nodes, DP RPC 29550, master 29501).
ACCEPTED: dict[str, tuple[list[str], str, Any]] = {
    "--tensor-parallel-size": (["8"], "tensor_parallel_size", 8),
    "--pipeline-parallel-size": (["2"], "pipeline_parallel_size", 2),
    "--data-parallel-size": (["2"], "data_parallel_size", 2),
    "--data-parallel-size-local": (["1"], "data_parallel_size_local", 1),
    "--data-parallel-address": (["mimo-0.mimo"], "data_parallel_address", "mimo-0.mimo"),
    "--data-parallel-rpc-port": (["29550"], "data_parallel_rpc_port", 29550),
    "--data-parallel-start-rank": (["1"], "data_parallel_start_rank", 1),
    "--headless": ([], "headless", True),
    "--enable-expert-parallel": ([], "enable_expert_parallel", True),
    "--max-model-len": (["262144"], "max_model_len", 262144),
    "--gpu-memory-utilization": (["0.9"], "gpu_memory_utilization", 0.9),
    "--kv-cache-dtype": (["fp8"], "kv_cache_dtype", "fp8"),
    "--speculative-config": ([json.dumps(MTP)], "speculative_config", MTP),
    "--reasoning-parser": (["mimo"], "reasoning_parser", "mimo"),
    "--enable-auto-tool-choice": ([], "enable_auto_tool_choice", True),
    "--tool-call-parser": (["mimo"], "tool_call_parser", "mimo"),
    "--served-model-name": (["mimo-v2-flash"], "served_model_name", ["mimo-v2-flash"]),
    "--revision": (["main"], "revision", "main"),
    "--download-dir": (["/models"], "download_dir", "/models"),
    "--trust-remote-code": ([], "trust_remote_code", True),
    "--generation-config": (["vllm"], "generation_config", "vllm"),
    "--api-key": (["secret"], "api_key", ["secret"]),
    "--default-chat-template-kwargs": ([json.dumps(THINKING)], "default_chat_template_kwargs", THINKING),
    "--nnodes": (["2"], "nnodes", 2),
    "--node-rank": (["1"], "node_rank", 1),
    "--master-addr": (["mimo-0.mimo"], "master_addr", "mimo-0.mimo"),
    "--master-port": (["29501"], "master_port", 29501),
    "--host": (["0.0.0.0"], "host", "0.0.0.0"),
    "--port": (["8000"], "port", 8000),
}

# Flags model-facts.md says were removed. `--disable-log-requests` is not among them: 0.33.0
# still accepts it (see test_disable_log_requests_is_only_the_inverse_of_enable_log_requests).
REMOVED: dict[str, list[str]] = {
    "--swap-space": ["4"],
    "--num-redundant-experts": ["0"],
    "--cuda-graph-sizes": ["8"],
    "--task": ["generate"],
    "--disable-frontend-multiprocessing": [],
}


# A two-node deployment (bf16 on H100: TP8 x PP2) with MTP and thinking switched on, so the
# rendered line carries every flag the facts above cover.
MULTI_NODE = {
    "apiVersion": "serving.mimo.dev/v1alpha1",
    "kind": "MimoDeployment",
    "metadata": {"name": "mimo", "namespace": "llm", "uid": "00000000-0000-0000-0000-0000000000aa"},
    "spec": {
        # bf16: the official checkpoint is fp8, so a bf16 copy on a volume, declared as a copy of it.
        "model": {"name": "/models/mimo-v2-flash-bf16", "copyOf": MODEL, "servedName": "mimo-v2-flash"},
        "precision": "bf16",
        "gpu": {"type": "H100-80GB"},
        "speculativeDecoding": {"mtp": "on"},
        "thinking": {"default": True},
    },
}


def _leader_and_worker() -> tuple[list[str], list[str]]:
    """What pods 0 and 1 of the rendered two-node group exec after `vllm serve` (tests/unit/kubelet.py)."""
    md = parse_mimo_deployment(MULTI_NODE)
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan), plan
    assert (plan.nodes_per_replica, plan.tensor_parallel, plan.pipeline_parallel) == (2, 8, 2)
    [sts] = [c for c in render_children(md, plan, RenderConfig()) if c["kind"] == "StatefulSet"]
    with tempfile.TemporaryDirectory(prefix="mimo-shim-") as bin_dir:
        leader, worker = (exec_argv(pod, Path(bin_dir)) for pod in statefulset_pods(sts))
    assert leader[0] == worker[0] == "serve"
    return leader[1:], worker[1:]


def _cases() -> dict[str, list[str]]:
    cases: dict[str, list[str]] = {"bare": [MODEL]}
    for flag, (values, _, _) in ACCEPTED.items():
        argv = [MODEL, flag, *values]
        if flag == "--enable-auto-tool-choice":  # vLLM refuses it without a tool parser
            argv += ["--tool-call-parser", "mimo"]
        cases[f"accept {flag}"] = argv
    for flag, values in REMOVED.items():
        cases[f"removed {flag}"] = [MODEL, flag, *values]
    leader, worker = _leader_and_worker()
    cases |= {
        "leader": leader,
        "worker": worker,
        "max-model-len auto": [MODEL, "--max-model-len", "auto"],
        "disable-log-requests": [MODEL, "--disable-log-requests"],
        "disable-hybrid-kv": [MODEL, "--disable-hybrid-kv-cache-manager"],
        "auto tool choice alone": [MODEL, "--enable-auto-tool-choice"],
        "unknown reasoning parser": [MODEL, "--reasoning-parser", "no-such-parser"],
        "unknown tool parser": [MODEL, "--enable-auto-tool-choice", "--tool-call-parser", "no-such-parser"],
    }
    return cases


@pytest.fixture(scope="module")
def results() -> Mapping[str, ServeParse]:
    cases = _cases()
    return dict(zip(cases, parse_serve_args(list(cases.values())), strict=True))


@pytest.mark.parametrize("flag", list(ACCEPTED))
def test_flag_is_accepted_with_its_value(results: Mapping[str, ServeParse], flag: str) -> None:
    res = results[f"accept {flag}"]
    assert res.ok, res.error
    _, dest, expected = ACCEPTED[flag]
    assert res.parsed[dest] == expected
    assert res.deprecated == ()
    assert res.parsed["model_tag"] == MODEL


@pytest.mark.parametrize("flag", list(REMOVED))
def test_removed_flag_is_refused(results: Mapping[str, ServeParse], flag: str) -> None:
    res = results[f"removed {flag}"]
    assert not res.ok
    assert res.error is not None
    assert "unrecognized arguments" in res.error and flag in res.error


def test_disable_log_requests_is_only_the_inverse_of_enable_log_requests(
    results: Mapping[str, ServeParse],
) -> None:
    # model-facts.md lists it as removed, but 0.33.0 registers every BooleanOptionalAction as an
    # EnableDisableAction (vllm/utils/argparse_utils.py), so `--enable-log-requests` gets a
    # `--disable-log-requests` twin that sets the default (False). Harmless, still never emitted.
    res = results["disable-log-requests"]
    assert res.ok, res.error
    assert res.parsed["enable_log_requests"] is False
    assert results["bare"].parsed["enable_log_requests"] is False


def test_max_model_len_auto_means_minus_one(results: Mapping[str, ServeParse]) -> None:
    # human_readable_int_or_auto maps "auto" (and "-1") to -1: fit the longest context that fits.
    res = results["max-model-len auto"]
    assert res.ok, res.error
    assert res.parsed["max_model_len"] == -1


def test_rendered_multinode_pair_parses(results: Mapping[str, ServeParse]) -> None:
    leader, worker = results["leader"], results["worker"]
    assert leader.ok, leader.error
    assert worker.ok, worker.error
    assert leader.deprecated == () and worker.deprecated == ()
    assert (leader.parsed["node_rank"], worker.parsed["node_rank"]) == (0, 1)
    assert worker.parsed["headless"] is True and leader.parsed["headless"] is False
    for res in (leader, worker):
        assert res.parsed["speculative_config"] == MTP
        assert (res.parsed["tensor_parallel_size"], res.parsed["pipeline_parallel_size"]) == (8, 2)
        assert (res.parsed["nnodes"], res.parsed["master_port"]) == (2, 29501)
        assert res.parsed["master_addr"] == "mimo-r0-0.mimo-pods.llm.svc"
    assert leader.parsed["default_chat_template_kwargs"] == THINKING
    assert leader.parsed["served_model_name"] == ["mimo-v2-flash"]
    assert (leader.parsed["reasoning_parser"], leader.parsed["tool_call_parser"]) == ("mimo", "mimo")


def test_mimo_parsers_are_registered() -> None:
    # Neither flag has argparse choices ("validated after parsing to include plugins"), so a bad
    # name only fails at API-server start-up; check the registries directly as well.
    reg = registered_parsers()
    assert "mimo" in reg.reasoning_parsers
    assert "mimo" in reg.tool_call_parsers
    # What the vLLM recipe used before the MiMo parsers existed; still there as a fallback.
    assert "qwen3" in reg.reasoning_parsers
    assert "qwen3_xml" in reg.tool_call_parsers


def test_unknown_parser_names_are_refused(results: Mapping[str, ServeParse]) -> None:
    assert not results["unknown reasoning parser"].ok
    assert "invalid reasoning parser" in (results["unknown reasoning parser"].error or "")
    assert not results["unknown tool parser"].ok
    assert "invalid tool call parser" in (results["unknown tool parser"].error or "")


def test_auto_tool_choice_needs_a_tool_parser(results: Mapping[str, ServeParse]) -> None:
    res = results["auto tool choice alone"]
    assert not res.ok
    assert "--enable-auto-tool-choice requires --tool-call-parser" in (res.error or "")


def test_hybrid_kv_cache_manager_switch_exists_and_defaults_to_auto(
    results: Mapping[str, ServeParse],
) -> None:
    # None = vLLM decides (hybrid on unless a connector or option rules it out); the planner's
    # KV sizing assumes the hybrid manager, so the renderer must not emit this flag by default.
    assert results["bare"].parsed["disable_hybrid_kv_cache_manager"] is None
    res = results["disable-hybrid-kv"]
    assert res.ok, res.error
    assert res.parsed["disable_hybrid_kv_cache_manager"] is True


def test_parser_defaults(results: Mapping[str, ServeParse]) -> None:
    parsed = results["bare"].parsed
    assert parsed["gpu_memory_utilization"] == 0.92
    assert parsed["master_port"] == 29501
    assert parsed["master_addr"] == "127.0.0.1"
    assert parsed["nnodes"] == 1
    assert parsed["port"] == 8000
    assert parsed["generation_config"] == "auto"
    assert parsed["kv_cache_dtype"] == "auto"
    # Left unset at parse time and resolved later: max_num_seqs / max_num_batched_tokens from the
    # GPU's memory (EngineArgs.get_batch_defaults), the DP RPC port from ParallelConfig (29550).
    assert parsed["max_num_seqs"] is None
    assert parsed["max_num_batched_tokens"] is None
    assert parsed["data_parallel_rpc_port"] is None
    assert parsed["max_model_len"] is None


def _source(rel: str) -> str:
    return (vllm_source_dir() / rel).read_text()


def test_source_level_defaults() -> None:
    # Facts the parser leaves as None; read where 0.33.0 resolves them.
    parallel = _source("config/parallel.py")
    assert "data_parallel_rpc_port: int = Field(default=29550, ge=1, le=65535)" in parallel
    envs = _source("envs.py")
    assert "VLLM_ENGINE_READY_TIMEOUT_S: int = 600" in envs
    assert 'os.environ.get("VLLM_ENGINE_READY_TIMEOUT_S", "600")' in envs
    # H100/H200 class (>= 70 GiB, not A100) API-server defaults: 8192 batched tokens, 1024 seqs.
    batch = _source("engine/arg_utils.py").split("def get_batch_defaults", 1)[1].split("# tpu specific", 1)[0]
    assert "device_memory >= 70 * GiB_bytes" in batch
    assert "UsageContext.OPENAI_API_SERVER: 8192" in batch
    assert "UsageContext.OPENAI_API_SERVER: 1024" in batch


def test_mtp_is_the_speculative_method_for_mimo_v2_flash() -> None:
    spec = _source("config/speculative.py")
    methods = spec.split("MTPModelTypes = Literal[", 1)[1].split("]", 1)[0]
    assert '"mtp"' in methods
    # Model-specific names such as "mimo_v2_mtp" still parse but are rewritten to "mtp" with a
    # deprecation warning, so the renderer emits "mtp".
    assert '"mimo_v2_mtp"' in methods
    assert "is deprecated and replaced with mtp" in spec
    # MiMoV2FlashForCausalLM drafts with its first MTP block only (the checkpoint has three), so
    # num_speculative_tokens > 1 re-runs that one block.
    assert '"MiMoV2FlashForCausalLM"' in spec
    assert "_MIMO_V2_FLASH_NUM_MTP_LAYERS = 1" in _source("model_executor/models/mimo_v2_mtp.py")
