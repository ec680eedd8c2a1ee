"""The health checks of a multi-node group, run as the kubelet runs an exec probe: every rank's readiness,
startup and liveness command from the rendered StatefulSet, with the pod's own environment, against a
real HTTP server standing in for the group's head (its DNS name pointed at this machine). A headless
worker serves no HTTP, so before this change it reported healthy whenever its process ran, even with
its head gone (vLLM issues #11996, #32136); now it follows its head."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import yaml

from mimo_operator.api import constants, parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from tests.unit.kubelet import container_env, statefulset_pods
from tests.unit.test_render_golden import GOLDEN

PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


@contextmanager
def head_answering(status: int) -> Iterator[int]:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _group_pods(scenario: str) -> list[dict[str, Any]]:
    md = parse_mimo_deployment(yaml.safe_load((GOLDEN / f"{scenario}.input.yaml").read_text()))
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan) and plan.nodes_per_replica == 2
    sts = next(c for c in render_children(md, plan, RenderConfig()) if c["kind"] == "StatefulSet")
    return statefulset_pods(sts)


def _probe_exit(pod: dict[str, Any], probe: str, port: int) -> int:
    """Exit status of the probe's command, the head's name and the API port pointed at `port` here."""
    (container,) = pod["spec"]["containers"]
    command = list(container[probe]["exec"]["command"])
    head = f"{pod['metadata']['name'].rsplit('-', 1)[0]}-0."
    script = command[-1]
    assert head in script or pod["metadata"]["name"].endswith("-0")
    name = script.split("h=")[2].split(";")[0]  # the else branch: the head's DNS name
    assert name.startswith(head), name
    command[-1] = script.replace(name, "127.0.0.1").replace(f":{constants.HTTP_PORT}/", f":{port}/")
    env = {**container_env(pod, container), "PATH": "/usr/bin:/bin"}
    return subprocess.run(command, env=env, capture_output=True, timeout=30, check=False).returncode


@pytest.mark.parametrize("scenario", ["bf16-h100-multinode", "dp-ep-multinode"])
def test_every_rank_is_healthy_only_while_its_groups_head_answers_health(scenario: str) -> None:
    pods = _group_pods(scenario)
    assert [p["metadata"]["name"][-2:] for p in pods] == ["-0", "-1"]
    for probe in PROBES:
        with head_answering(200) as port:
            assert [_probe_exit(p, probe, port) for p in pods] == [0, 0], probe
        with head_answering(503) as port:  # the engine died: vLLM's /health answers 503
            assert all(_probe_exit(p, probe, port) != 0 for p in pods), probe
        # The head is gone (its pod deleted or restarting): nothing listens on the port.
        assert all(_probe_exit(p, probe, port) != 0 for p in pods), probe
