"""The installer's policy on what a MimoDeployment may ask for (api/policy.py), case by case."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.api.policy import AuthorPolicy, image_repository
from mimo_operator.render import RenderConfig
from tests.unit.test_render_golden import GOLDEN

CONFIGURED = (RenderConfig().vllm_image, RenderConfig().rocm_vllm_image)


def _md(serving: dict[str, Any] | None = None, **spec: Any) -> Any:
    body = yaml.safe_load((GOLDEN / "fp8-h100.input.yaml").read_text())
    body["spec"].update(spec)
    body["spec"]["serving"] = {**body["spec"].get("serving", {}), **(serving or {})}
    return parse_mimo_deployment(body)


def _refusals(md: Any, policy: AuthorPolicy | None = None) -> list[str]:
    return (policy or AuthorPolicy()).refusals(md, CONFIGURED)


def test_the_example_deployment_is_allowed_by_the_default_policy() -> None:
    assert _refusals(_md()) == []


@pytest.mark.parametrize(
    "image",
    [
        "vllm/vllm-openai:v0.33.0",
        "docker.io/vllm/vllm-openai:nightly",
        "vllm/vllm-openai@sha256:" + "a" * 64,
        "vllm/vllm-openai-rocm:v0.33.0",
    ],
)
def test_the_supported_vllm_images_are_allowed_under_any_tag_or_digest(image: str) -> None:
    assert _refusals(_md({"image": image})) == []


@pytest.mark.parametrize(
    "image",
    [
        "attacker/vllm-openai:v0.33.0",
        "vllm/vllm-openai-evil:v0.33.0",  # a repository whose name merely starts with an allowed one
        "evil.example.com/vllm/vllm-openai:v0.33.0",  # the same path on another registry
        "busybox",
    ],
)
def test_other_images_are_refused_with_the_field_and_the_chart_value(image: str) -> None:
    (refusal,) = _refusals(_md({"image": image}))
    assert refusal.startswith("spec.serving.image") and "policy.allowedImages" in refusal


def test_a_registry_prefix_allows_everything_under_it_and_nothing_beside_it() -> None:
    policy = AuthorPolicy(allowed_images=("registry.local/",))
    assert _refusals(_md({"image": "registry.local/ml/vllm:v1"}), policy) == []
    assert _refusals(_md({"image": "registry.local.evil.com/ml/vllm:v1"}), policy)
    assert _refusals(_md({"image": "attacker/vllm"}), AuthorPolicy(allowed_images=("*",))) == []


def test_image_references_normalise_like_the_container_runtime() -> None:
    assert image_repository("ubuntu") == "docker.io/library/ubuntu"
    assert image_repository("vllm/vllm-openai:v1") == "docker.io/vllm/vllm-openai"
    assert image_repository("localhost:5000/vllm:v1") == "localhost:5000/vllm"
    assert image_repository("registry:5000/ml/vllm@sha256:" + "b" * 64) == "registry:5000/ml/vllm"


def test_host_path_is_refused_unless_allowed() -> None:
    md = _md(model={"cache": {"hostPath": {"path": "/mnt/nvme/models"}}})
    (refusal,) = _refusals(md)
    assert "spec.model.cache.hostPath" in refusal and "policy.allowHostPath" in refusal
    assert _refusals(md, AuthorPolicy(allow_host_path=True)) == []


def test_env_may_read_only_the_secrets_the_spec_names() -> None:
    token = {"name": "hf-token", "key": "token"}
    md = _md(
        {
            "env": [
                {"name": "PLAIN", "value": "1"},
                {"name": "SAME_TOKEN", "valueFrom": {"secretKeyRef": token}},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "payments-db", "key": "pw"}}},
            ]
        },
        model={"tokenSecretRef": token},
    )
    (refusal,) = _refusals(md)
    assert refusal.startswith("spec.serving.env[2] (DB_PASSWORD)") and "'payments-db'" in refusal
    assert _refusals(md, AuthorPolicy(allow_env_secrets=True)) == []


def test_priority_classes_only_from_the_allowed_list() -> None:
    md = _md(placement={"priorityClassName": "system-node-critical"})
    (refusal,) = _refusals(md)
    assert "priorityClassName 'system-node-critical'" in refusal and "(none;" in refusal
    assert _refusals(md, AuthorPolicy(allowed_priority_classes=("llm-serving",)))
    assert _refusals(md, AuthorPolicy(allowed_priority_classes=("*",))) == []
    allowed = _md(placement={"priorityClassName": "llm-serving"})
    assert _refusals(allowed, AuthorPolicy(allowed_priority_classes=("llm-serving",))) == []


def test_every_refusal_is_reported_at_once() -> None:
    md = _md(
        {"image": "attacker/vllm"},
        model={"cache": {"hostPath": {"path": "/"}}},
        placement={"priorityClassName": "x"},
    )
    assert len(_refusals(md)) == 3
