"""Every `vllm serve` line a rendered pod would run parses with vLLM 0.33.0's own argument parser.

The harness (tests/vllm_cli) runs vLLM's real parser, including the API-server checks that the
named reasoning and tool parsers are registered. Nothing is re-assembled here: each StatefulSet's
pods are made as the StatefulSet controller makes them, their environment and `$(VAR)` references
are resolved as the kubelet does, and the container's command really runs (through `/bin/sh` for a
multi-node group) until it execs `vllm`, a shim that prints its argv (tests/unit/kubelet.py). So a
wrong rank label, a broken group entrypoint or a `$(NODE_RANK)` that never expands fails here.
All lines go to vLLM in one batch, since importing vLLM takes seconds.
"""

from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from tests.unit.kubelet import exec_argv, statefulset_pods
from tests.unit.test_render_golden import GOLDEN, SCENARIOS
from tests.vllm_cli.harness import ServeParse, parse_serve_args


def _pod_command_lines(bin_dir: Path) -> list[tuple[str, Plan, dict[str, Any], list[str]]]:
    """(label, plan, pod, argv after `vllm`) for every pod of every scenario's StatefulSets."""
    lines = []
    for name in SCENARIOS:
        md = parse_mimo_deployment(yaml.safe_load((GOLDEN / f"{name}.input.yaml").read_text()))
        plan = plan_for(md.spec)
        assert isinstance(plan, Plan), plan
        for sts in (c for c in render_children(md, plan, RenderConfig()) if c["kind"] == "StatefulSet"):
            for pod in statefulset_pods(sts):
                lines.append((f"{name}/{pod['metadata']['name']}", plan, pod, exec_argv(pod, bin_dir)))
    return lines


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Plan, dict[str, Any], list[str]]]:
    return _pod_command_lines(tmp_path_factory.mktemp("shim-bin"))


@pytest.fixture(scope="module")
def parsed(lines: list[tuple[str, Plan, dict[str, Any], list[str]]]) -> dict[str, ServeParse]:
    # The shim prints the words after `vllm`; the parser takes the words after `vllm serve`.
    for label, _, _, argv in lines:
        assert argv[:1] == ["serve"], f"{label} execs `vllm {argv[:1]}`, not `vllm serve`"
    results = parse_serve_args([argv[1:] for _, _, _, argv in lines])
    return {label: result for (label, _, _, _), result in zip(lines, results, strict=True)}


def test_every_pod_of_every_scenario_was_run(
    lines: list[tuple[str, Plan, dict[str, Any], list[str]]],
) -> None:
    # fp8-h100 and autoscaling: 2 and 3 pods of one StatefulSet; fp8-h200 and placement: 1 each;
    # bf16-h100-multinode: 2 replicas x 2 nodes; dp-ep-multinode: 1 replica x 2 nodes; fp8-kv-b200: 1.
    # (spec.replicas of each input; 1 if absent.)
    assert sorted(label for label, _, _, _ in lines) == [
        "autoscaling/mimo-auto-0",
        "autoscaling/mimo-auto-1",
        "autoscaling/mimo-auto-2",
        "bf16-h100-multinode/mimo-bf16-r0-0",
        "bf16-h100-multinode/mimo-bf16-r0-1",
        "bf16-h100-multinode/mimo-bf16-r1-0",
        "bf16-h100-multinode/mimo-bf16-r1-1",
        "dp-ep-multinode/mimo-wide-r0-0",
        "dp-ep-multinode/mimo-wide-r0-1",
        "fp8-h100/mimo-0",
        "fp8-h100/mimo-1",
        "fp8-h200/mimo-h200-0",
        "fp8-kv-b200/mimo-fp8kv-b200-0",
        "placement-extra-args/mimo-placed-0",
    ]


def test_rendered_commands_parse_with_the_pinned_vllm(
    lines: list[tuple[str, Plan, dict[str, Any], list[str]]], parsed: dict[str, ServeParse]
) -> None:
    for label, plan, _, argv in lines:
        result = parsed[label]
        assert result.ok, f"{label}: vLLM refused {argv}: {result.error}"
        assert not result.deprecated, f"{label} uses deprecated flags {result.deprecated}"
        values: dict[str, Any] = dict(result.parsed)
        assert values["tensor_parallel_size"] == plan.tensor_parallel, label
        assert values["pipeline_parallel_size"] == plan.pipeline_parallel, label
        assert values["data_parallel_size"] == plan.data_parallel, label
        assert values["max_model_len"] == plan.max_model_len, label
        assert values["gpu_memory_utilization"] == pytest.approx(plan.gpu_memory_utilization), label
        assert values["trust_remote_code"] is True, label
        assert values["quantization"] is None, label  # the fp8 checkpoint carries its own config
        assert (values["speculative_config"] is not None) == plan.mtp, label
        assert values["download_dir"] == "/models", label
        assert values["port"] == 8000 and values["host"] == "0.0.0.0", label


def test_multi_node_ranks_get_their_own_rank_and_only_rank_0_serves(
    lines: list[tuple[str, Plan, dict[str, Any], list[str]]], parsed: dict[str, ServeParse]
) -> None:
    groups = [
        (label, pod)
        for label, plan, pod, _ in lines
        if plan.nodes_per_replica > 1 and plan.data_parallel == 1
    ]
    assert len(groups) == 4  # bf16-h100-multinode: 2 replicas x 2 nodes
    for label, pod in groups:
        values = parsed[label].parsed
        ordinal = int(pod["metadata"]["name"].rsplit("-", 1)[1])
        group = pod["metadata"]["name"].rsplit("-", 1)[0]
        assert values["nnodes"] == 2, label
        assert values["node_rank"] == ordinal, label
        assert values["headless"] is (ordinal > 0), label
        # Every rank dials pod 0 of its own group through the headless Service.
        assert values["master_addr"] == f"{group}-0.mimo-bf16-pods.llm.svc", label
        assert values["master_port"] == 29501, label


def test_data_parallel_ranks_across_nodes_start_where_the_previous_node_ended(
    lines: list[tuple[str, Plan, dict[str, Any], list[str]]], parsed: dict[str, ServeParse]
) -> None:
    """vLLM's multi-node data parallel launch (docs "Data Parallel Deployment"): every node runs
    --data-parallel-size-local engines; the head serves the API, the others run headless from
    --data-parallel-start-rank. Together the nodes must cover ranks 0..DP-1 exactly once."""
    groups = [
        (label, plan, pod)
        for label, plan, pod, _ in lines
        if plan.nodes_per_replica > 1 and plan.data_parallel > 1
    ]
    assert len(groups) == 2  # dp-ep-multinode: 1 replica x 2 nodes
    covered: list[int] = []
    for label, plan, pod in groups:
        values = parsed[label].parsed
        ordinal = int(pod["metadata"]["name"].rsplit("-", 1)[1])
        group = pod["metadata"]["name"].rsplit("-", 1)[0]
        local = values["data_parallel_size_local"]
        assert values["headless"] is (ordinal > 0), label
        # The head takes rank 0 by default; a start rank there would switch vLLM to hybrid balancing.
        assert (values["data_parallel_start_rank"] is None) is (ordinal == 0), label
        start = values["data_parallel_start_rank"] or 0
        assert values["data_parallel_size"] == plan.data_parallel, label
        assert local * values["tensor_parallel_size"] == plan.gpus_per_pod, label  # fills its node
        assert values["enable_expert_parallel"] is True, label
        assert values["data_parallel_address"] == f"{group}-0.mimo-wide-pods.llm.svc", label
        assert values["data_parallel_rpc_port"] == 29550, label
        assert values["nnodes"] == 1 and values["master_addr"] == "127.0.0.1", label  # not a torch group
        covered += range(start, start + local)
    assert sorted(covered) == list(range(groups[0][1].data_parallel))


def test_single_node_pods_run_plain_vllm_serve(
    lines: list[tuple[str, Plan, dict[str, Any], list[str]]], parsed: dict[str, ServeParse]
) -> None:
    for label, plan, _, _ in lines:
        if plan.nodes_per_replica == 1:
            values = parsed[label].parsed
            assert values["headless"] is False and values["nnodes"] == 1, label
