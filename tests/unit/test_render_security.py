"""vLLM pods as a non-root user (operator setting vllm_run_as_user): what the container may write."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from tests.unit.kubelet import container_env, statefulset_pods
from tests.unit.test_render_children import _load, _of_kind
from tests.unit.test_render_golden import SCENARIOS

NON_ROOT = RenderConfig(vllm_run_as_user=1000)


def _pods(name: str, config: RenderConfig) -> list[dict[str, Any]]:
    md = _load(name)
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan), plan
    children = render_children(md, plan, config)
    for sts in _of_kind(children, "StatefulSet"):
        kubernetes_validate.validate(sts, "1.35.0", strict=True)
    return [pod for sts in _of_kind(children, "StatefulSet") for pod in statefulset_pods(sts)]


def _writable_paths(pod: dict[str, Any]) -> set[str]:
    (container,) = pod["spec"]["containers"]
    read_only = {m["name"] for m in container["volumeMounts"] if m.get("readOnly")}
    return {m["mountPath"] for m in container["volumeMounts"] if m["name"] not in read_only}


@pytest.mark.parametrize("name", SCENARIOS)
def test_a_non_root_pod_has_a_writable_home_tmp_and_shm_and_nothing_else(name: str) -> None:
    for pod in _pods(name, NON_ROOT):
        (container,) = pod["spec"]["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsUser"] == 1000
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        env = container_env(pod, container)
        assert {"/home/vllm", "/tmp", "/dev/shm"} <= _writable_paths(pod)
        assert env["HOME"] == "/home/vllm"
        # torch asks getpass.getuser() at import; without a passwd entry it needs USER or LOGNAME.
        assert env["USER"] and env["LOGNAME"]


def test_by_default_the_pod_runs_as_the_images_user() -> None:
    for pod in _pods("fp8-h100", RenderConfig()):
        (container,) = pod["spec"]["containers"]
        assert "runAsUser" not in pod["spec"]["securityContext"]
        assert "readOnlyRootFilesystem" not in container["securityContext"]
        assert "HOME" not in container_env(pod, container)
