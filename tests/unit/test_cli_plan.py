"""`mimo-operator plan` and `gpus` as a person runs them: output shapes and exit statuses."""

import json
import subprocess
import sys

import pytest

from mimo_operator.cli import main

REQUIRED_KEYS = {
    "feasible",
    "gpusPerReplica",
    "nodesPerReplica",
    "tensorParallel",
    "pipelineParallel",
    "dataParallel",
    "expertParallel",
    "maxModelLen",
    "weightsGiBPerGpu",
    "kvCacheGiBPerGpu",
    "kvCacheTokens",
    "maxConcurrentAtMaxLen",
    "summary",
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mimo_operator.cli", *args], capture_output=True, text=True, check=False
    )


def test_json_plan_has_the_documented_keys() -> None:
    proc = _run("plan", "--precision", "fp8", "--gpu", "H100-80GB", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data.keys() >= REQUIRED_KEYS
    assert data["feasible"] is True and data["gpusPerReplica"] == 8


def test_infeasible_plan_exits_2_with_reason() -> None:
    proc = _run("plan", "--gpu", "H100-80GB", "--tensor-parallel", "4", "-o", "json")
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["feasible"] is False and data["reason"] == "WeightsDoNotFit"
    assert "71.7 GiB" in data["message"]


@pytest.mark.parametrize(
    "args",
    [
        ["plan", "--gpu", "V100"],
        ["plan", "--max-model-len", "lots"],
        ["plan", "--gpu-memory-utilization", "1.5"],
        ["plan", "--gpu", "custom"],
        ["plan", "--precision", "fp4"],
    ],
)
def test_bad_arguments_exit_1_with_one_line_and_no_trace(args: list[str]) -> None:
    proc = _run(*args)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3  # argparse may add a usage line


def test_table_lists_rejected_alternatives(capsys: pytest.CaptureFixture[str]) -> None:
    copy = ["--model", "/models/MiMo-V2-Flash-bf16", "--copy-of", "XiaomiMiMo/MiMo-V2-Flash"]
    assert main(["plan", *copy, "--precision", "bf16", "--gpu", "H100-80GB"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bf16 on 16x H100-80GB: TP8 x PP2")
    assert "Rejected alternatives:" in out and "TP8 " in out


def test_custom_gpu_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--gpu", "custom", "--gpu-memory-gib", "141", "-o", "yaml"]) == 0
    assert "gpusPerReplica: 4" in capsys.readouterr().out


def test_gpus_lists_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gpus", "-o", "json"]) == 0
    keys = {row["key"] for row in json.loads(capsys.readouterr().out)}
    assert {"H100-80GB", "H100-80GB-PCIE", "H200-141GB", "B200-192GB", "A100-80GB", "L40S-48GB"} <= keys
