"""Whole rendered objects compared with reviewed snapshots in tests/unit/golden/.

A snapshot is written only by `UPDATE_GOLDEN=1 pytest tests/unit/test_render_golden.py` and must be
read before it is committed: it is the reviewer's record of every child a scenario produces.
"""

import os
from pathlib import Path

import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children

GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = sorted(p.name.removesuffix(".input.yaml") for p in GOLDEN.glob("*.input.yaml"))


def render_scenario(name: str) -> str:
    md = parse_mimo_deployment(yaml.safe_load((GOLDEN / f"{name}.input.yaml").read_text()))
    result = plan_for(md.spec)
    assert isinstance(result, Plan), result
    return yaml.safe_dump_all(render_children(md, result, RenderConfig()), sort_keys=False)


def test_every_required_scenario_has_a_snapshot() -> None:
    assert set(SCENARIOS) >= {
        "fp8-h100",
        "fp8-h200",
        "bf16-h100-multinode",
        "autoscaling",
        "placement-extra-args",
    }


@pytest.mark.parametrize("name", SCENARIOS)
def test_rendered_children_match_snapshot(name: str) -> None:
    rendered = render_scenario(name)
    snapshot = GOLDEN / f"{name}.golden.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        snapshot.write_text(rendered)
    assert snapshot.exists(), f"no snapshot for {name}: run UPDATE_GOLDEN=1 and review it"
    assert rendered == snapshot.read_text(), f"{name} changed: review the diff, then UPDATE_GOLDEN=1"
