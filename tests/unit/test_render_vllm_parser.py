"""Every rendered `vllm serve` command line parses with vLLM 0.33.0's own argument parser.

The harness (tests/vllm_cli) runs vLLM's real parser, including the API-server checks that the
named reasoning and tool parsers are registered. Multi-node groups are checked as each rank runs:
$(NODE_RANK) expanded the way Kubernetes does, and `--headless` added above rank 0 as the entry
script does. All lines go to vLLM in one batch, since importing vLLM takes seconds.
"""

from typing import Any

import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from mimo_operator.render.command import GROUP_ENTRYPOINT
from tests.unit.test_render_golden import GOLDEN, SCENARIOS
from tests.vllm_cli.harness import ServeParse, parse_serve_args


def _rank_command_lines() -> list[tuple[str, Plan, list[str]]]:
    lines = []
    for name in SCENARIOS:
        md = parse_mimo_deployment(yaml.safe_load((GOLDEN / f"{name}.input.yaml").read_text()))
        plan = plan_for(md.spec)
        assert isinstance(plan, Plan)
        for sts in (c for c in render_children(md, plan, RenderConfig()) if c["kind"] == "StatefulSet"):
            container = sts["spec"]["template"]["spec"]["containers"][0]
            args: list[str] = container["args"]
            if container["command"] == ["vllm", "serve"]:
                lines.append((f"{name}/{sts['metadata']['name']}", plan, args))
                continue
            assert container["command"][2] == GROUP_ENTRYPOINT
            for rank in range(plan.nodes_per_replica):
                expanded = [a.replace("$(NODE_RANK)", str(rank)) for a in args]
                if rank:
                    expanded.append("--headless")
                lines.append((f"{name}/{sts['metadata']['name']}/rank{rank}", plan, expanded))
    return lines


LINES = _rank_command_lines()


@pytest.fixture(scope="module")
def parsed() -> list[ServeParse]:
    return parse_serve_args([args for _, _, args in LINES])


@pytest.mark.parametrize("index", range(len(LINES)), ids=[label for label, _, _ in LINES])
def test_rendered_command_parses_with_the_pinned_vllm(parsed: list[ServeParse], index: int) -> None:
    label, plan, args = LINES[index]
    result = parsed[index]
    assert result.ok, f"{label}: vLLM refused {args}: {result.error}"
    assert not result.deprecated, f"{label} uses deprecated flags {result.deprecated}"
    values: dict[str, Any] = dict(result.parsed)
    assert values["tensor_parallel_size"] == plan.tensor_parallel
    assert values["pipeline_parallel_size"] == plan.pipeline_parallel
    assert values["data_parallel_size"] == plan.data_parallel
    assert values["max_model_len"] == plan.max_model_len
    assert values["gpu_memory_utilization"] == pytest.approx(plan.gpu_memory_utilization)
    assert values["trust_remote_code"] is True
    assert values["quantization"] is None  # the fp8 checkpoint carries its own config
    assert (values["speculative_config"] is not None) == plan.mtp
    if plan.nodes_per_replica > 1:
        assert values["nnodes"] == plan.nodes_per_replica
        assert values["headless"] == label.endswith(tuple(f"rank{r}" for r in range(1, 8)))
