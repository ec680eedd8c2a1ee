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
    "maxConcurrentPromptsAtMaxLen",
    "vllmLogKvCacheTokens",
    "vllmLogMaxConcurrency",
    "attentionBackend",
    "attentionBackendFlag",
    "validation",
    "notes",
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
    assert {"H20-96GB", "H800-80GB", "B300-288GB", "MI300X-192GB", "MI325X-256GB", "MI355X-288GB"} <= keys


def test_gpus_table_shows_which_attention_backend_each_gpu_gets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gpus"]) == 0
    rows = {line.split()[0]: " ".join(line.split()) for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["A100-80GB"].endswith("TRITON_ATTN_DIFFKV no")
    assert rows["H200-141GB"].endswith("FLASH_ATTN_DIFFKV TRITON_ATTN_DIFFKV (flag)")
    assert rows["B300-288GB"].endswith("FLASH_ATTN_DIFFKV TRITON_ATTN_DIFFKV (flag)")
    assert "CDNA3" in rows["MI300X-192GB"] and "AMD_Instinct_MI300X_OAM" in rows["MI300X-192GB"]


def test_fp8_kv_on_a100_is_refused_with_the_reason() -> None:
    proc = _run("plan", "--gpu", "A100-80GB", "--kv-cache-dtype", "fp8", "-o", "json")
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["reason"] == "AttentionUnsupported" and "SM 8.9" in data["message"]


def test_max_model_len_1_is_refused_with_the_reason() -> None:
    proc = _run("plan", "--max-model-len", "1", "-o", "json")
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["reason"] == "ContextTooShort" and "below 4096 tokens" in data["message"]


def test_plan_names_validation_and_what_vllm_will_log(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--gpu", "H200-141GB"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(", validated (vLLM recipe)")
    assert "validation                      validated by vLLM recipe (github.com/vllm-project/recipes" in out
    assert 'note: vLLM will log "GPU KV cache size: ' in out
    assert "Maximum concurrency for 131,072 tokens per request" in out


def test_explain_prints_the_derivation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--gpu", "H200-141GB", "--explain"]) == 0
    out = capsys.readouterr().out
    sections = [
        line[:-1] for line in out.splitlines() if line and not line.startswith(" ") and line.endswith(":")
    ]
    assert sections == [
        "budget",
        "weights",
        "reserve",
        "kv pool",
        "kv per layer",
        "vllm blocks",
        "vllm log",
        "vllm steady state",
    ]
    # Each GPU of TP4 holds a quarter of the routed experts: 47 MoE layers x 256 experts x 3 x 4096 x 2048
    # fp8 parameters (1 byte + one fp32 scale per 128x128 block), / 4.
    experts = 47 * 256 * 3 * 4096 * 2048 * (1 + 4 / 128**2) / 4 / 2**30
    line = next(line for line in out.splitlines() if "experts" in line and "params" in line)
    assert f"{experts:8.2f} GiB" in line
    # 9 full-attention layers x 1 KV head (4 heads / TP4) x (192 + 128) x 2 bytes per token.
    assert "9 full-attention layers x 1 KV head(s) x (K 192 + V 128) x 2 B = 5,760 B per token" in out
    assert "39 sliding layers x 2 KV head(s)" in out
    assert "GPU KV cache size:" in out and "validation: validated by vLLM recipe" in out


def test_explain_of_a_refused_plan_prints_the_refusal() -> None:
    proc = _run("plan", "--gpu", "H100-80GB", "--tensor-parallel", "4", "--explain")
    assert proc.returncode == 2
    assert proc.stdout.startswith("INFEASIBLE (WeightsDoNotFit)")


def test_mtp_is_off_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--gpu", "H200-141GB", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["mtp"] is False
    assert main(["plan", "--gpu", "H200-141GB", "--mtp", "on", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["mtp"] is True
