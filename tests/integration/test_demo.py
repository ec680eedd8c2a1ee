"""`make demo` as a person runs it, in its non-interactive mode: it must end with Ready deployments."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.sandbox
REPO = Path(__file__).resolve().parents[2]


def test_demo_prints_ready_deployments_plans_and_the_infeasible_event() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mimo_operator.cli", "demo", "--non-interactive"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    table = out.split("$ kubectl get mimo -n mimo-demo -o wide\n", 1)[1].split("\n\n", 1)[0].splitlines()
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["mimo-fp8-h100"][1:5] == ["Ready", "1/1", "8", "131072"]
    assert rows["mimo-bf16-h100"][1:4] == ["Ready", "1/1", "16"]
    assert rows["mimo-fp8-h200"][1:4] == ["Ready", "1/1", "4"]
    assert rows["mimo-infeasible"][1] == "Failed"
    assert "GPUs/replica 16 on 2 node(s), TP8 PP2" in out
    assert "event Warning NeedsMoreThanOneNode" in out
