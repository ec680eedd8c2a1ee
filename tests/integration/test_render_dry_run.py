"""Every rendered child of every golden scenario is accepted by the real API server (dryRun=All):
admission, defaulting and validation as a cluster would run them, without creating anything."""

from __future__ import annotations

import json

import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from mimo_sandbox.cluster import Sandbox
from tests.unit.test_render_golden import GOLDEN, SCENARIOS

pytestmark = pytest.mark.sandbox


@pytest.mark.parametrize("name", SCENARIOS)
def test_rendered_children_pass_server_side_dry_run(sandbox: Sandbox, namespace: str, name: str) -> None:
    body = yaml.safe_load((GOLDEN / f"{name}.input.yaml").read_text())
    body["metadata"]["namespace"] = namespace
    md = parse_mimo_deployment(body)
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    children = render_children(md, plan, RenderConfig())
    proc = sandbox.kubectl(
        "create",
        "--dry-run=server",
        "-o",
        "json",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": children}),
    )
    decoder, text, accepted = json.JSONDecoder(), proc.stdout.strip(), []
    while text:  # kubectl prints one JSON document per object
        obj, end = decoder.raw_decode(text)
        accepted.append(obj)
        text = text[end:].strip()
    assert [(o["kind"], o["metadata"]["name"]) for o in accepted] == [
        (c["kind"], c["metadata"]["name"]) for c in children
    ]
    assert not json.loads(sandbox.kubectl("-n", namespace, "get", "all", "-o", "json").stdout)["items"]
