"""At `kubectl apply`, a real kube-apiserver refuses a model name the planner cannot size, with the list.

tests/unit/test_family.py checks the CEL rule's text; only the API server can say that it compiles
within the cost budget and what a user reads when it fires.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_operator.api.constants import CRD_NAME
from mimo_operator.models.family import KNOWN_CHECKPOINTS
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import NotYet, wait_for

pytestmark = pytest.mark.sandbox

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / "mimodeployments.serving.mimo.dev.yaml"


@pytest.fixture(scope="module")
def ns(sandbox: Sandbox) -> Iterator[str]:
    sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    sandbox.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")

    def served() -> Any:
        proc = sandbox.kubectl("get", "mimodeployments", "-A", check=False)
        return proc.returncode == 0 or NotYet(proc.stderr.strip())

    wait_for(served, timeout=30, description="mimodeployments to be served")
    name = f"family-{secrets.token_hex(3)}"
    sandbox.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _apply(sandbox: Sandbox, ns: str, name: str, model: dict[str, Any], **spec: Any) -> Any:
    body = {
        "apiVersion": "serving.mimo.dev/v1alpha1",
        "kind": "MimoDeployment",
        "metadata": {"name": name},
        "spec": {"model": model, "gpu": {"type": "H200-141GB"}, **spec},
    }
    return sandbox.kubectl(
        "apply",
        "--server-side",
        "--validate=strict",
        "-n",
        ns,
        "-f",
        "-",
        input=yaml.safe_dump(body),
        check=False,
    )


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
