"""At `kubectl apply`, a real kube-apiserver refuses a model name the planner cannot size, with the list.

tests/unit/test_family.py checks the CEL rule's text; only the API server can say that it compiles
within the cost budget and what a user reads when it fires.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mimo_operator.models.family import KNOWN_CHECKPOINTS
from mimo_sandbox.cluster import Sandbox
from tests.integration.conftest import apply_strict, manifest_namespace

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def ns(sandbox: Sandbox, mimo_crd: str) -> Iterator[str]:
    with manifest_namespace(sandbox, "family") as name:
        yield name


def _apply(sandbox: Sandbox, ns: str, name: str, model: dict[str, Any], **spec: Any) -> Any:
    body = {
        "apiVersion": "serving.mimo.dev/v1alpha1",
        "kind": "MimoDeployment",
        "metadata": {"name": name},
        "spec": {"model": model, "gpu": {"type": "H200-141GB"}, **spec},
    }
    return apply_strict(sandbox, ns, body)


def test_an_unknown_model_name_is_refused_with_the_supported_list(sandbox: Sandbox, ns: str) -> None:
    proc = _apply(sandbox, ns, "unknown-model", {"name": "someone/MiMo-V3-Mega"})
    assert proc.returncode != 0
    assert "spec.model.name" in proc.stderr
    assert all(name in proc.stderr for name in KNOWN_CHECKPOINTS), proc.stderr


@pytest.mark.parametrize("name", sorted(KNOWN_CHECKPOINTS))
def test_every_known_checkpoint_is_accepted_up_to_1m_context(sandbox: Sandbox, ns: str, name: str) -> None:
    safe = name.rsplit("/", maxsplit=1)[-1].lower().replace(".", "-")
    proc = _apply(sandbox, ns, safe, {"name": name}, context={"maxModelLen": 1048576})
    assert proc.returncode == 0, proc.stderr


def test_copies_and_fine_tunes_are_accepted_under_any_name(sandbox: Sandbox, ns: str) -> None:
    copy = _apply(
        sandbox,
        ns,
        "bf16-copy",
        {"name": "/models/flash-bf16", "copyOf": "XiaomiMiMo/MiMo-V2-Flash"},
        precision="bf16",
    )
    assert copy.returncode == 0, copy.stderr
    tuned = _apply(
        sandbox,
        ns,
        "fine-tune",
        {"name": "acme/pro-sft", "config": '{"architectures": ["MiMoV2ForCausalLM"]}'},
    )
    assert tuned.returncode == 0, tuned.stderr


def test_copy_of_an_unknown_checkpoint_is_refused(sandbox: Sandbox, ns: str) -> None:
    proc = _apply(sandbox, ns, "bad-copy", {"name": "/models/x", "copyOf": "someone/other"})
    assert proc.returncode != 0 and "spec.model.copyOf" in proc.stderr, proc.stderr


def test_context_beyond_1m_is_refused(sandbox: Sandbox, ns: str) -> None:
    proc = _apply(sandbox, ns, "too-long", {"name": "XiaomiMiMo/MiMo-V2.5"}, context={"maxModelLen": 1048577})
    assert proc.returncode != 0 and "maxModelLen" in proc.stderr, proc.stderr


def test_a_copy_and_a_config_together_are_refused(sandbox: Sandbox, ns: str) -> None:
    model = {"name": "/models/x", "copyOf": "XiaomiMiMo/MiMo-V2-Flash", "config": "{}"}
    proc = _apply(sandbox, ns, "copy-and-config", model)
    assert proc.returncode != 0 and "copyOf" in proc.stderr and "config" in proc.stderr, proc.stderr


def test_config_from_the_checkpoint_is_refused_where_no_job_reads_it(sandbox: Sandbox, ns: str) -> None:
    read_only = {"persistentVolumeClaim": {"claimName": "w", "readOnly": True}}
    node_local = {"hostPath": {"path": "/mnt/nvme"}, "fetch": "job"}
    for case, cache in (("no-cache", None), ("read-only", read_only), ("node-local", node_local)):
        model = {"name": "acme/v25-sft", "configFrom": "checkpoint"}
        proc = _apply(sandbox, ns, f"from-{case}", {**model, **({"cache": cache} if cache else {})})
        assert proc.returncode != 0 and "spec.model.configFrom" in proc.stderr, proc.stderr
        assert "fetch: job" in proc.stderr and "spec.model.config" in proc.stderr, proc.stderr
    model = {"name": "acme/v25-sft", "configFrom": "checkpoint", "config": "{}"}
    proc = _apply(
        sandbox, ns, "from-and-config", {**model, "cache": {"volumeClaimTemplate": {"size": "1Ti"}}}
    )
    assert proc.returncode != 0 and "configFrom" in proc.stderr, proc.stderr
    accepted = _apply(
        sandbox,
        ns,
        "from-checkpoint",
        {
            "name": "acme/v25-sft",
            "configFrom": "checkpoint",
            "cache": {"volumeClaimTemplate": {"size": "1Ti"}},
        },
    )
    assert accepted.returncode == 0, accepted.stderr
