"""What the GPU kind changes in the rendered pods, asserted from the spec by hand.

An AMD GPU needs the ROCm build of vLLM, the amd.com/gpu resource, AMD's node label and the
environment the public vLLM recipe sets; an fp8 KV cache on Hopper/Blackwell needs vLLM told to use
the Triton DiffKV attention backend. Each expectation below is written from those facts, not read
from the renderer's output.
"""

from __future__ import annotations

from typing import Any

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children


def _vllm_pod(spec: dict[str, Any]) -> dict[str, Any]:
    md = parse_mimo_deployment(
        {
            "apiVersion": "serving.mimo.dev/v1alpha1",
            "kind": "MimoDeployment",
            "metadata": {"name": "m", "namespace": "llm"},
            "spec": spec,
        }
    )
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan), plan
    (sts,) = [c for c in render_children(md, plan, RenderConfig()) if c["kind"] == "StatefulSet"]
    pod: dict[str, Any] = sts["spec"]["template"]["spec"]
    return pod


def test_amd_gpu_gets_the_rocm_image_resource_label_and_recipe_environment() -> None:
    pod = _vllm_pod({"precision": "fp8", "gpu": {"type": "MI325X-256GB"}})
    (container,) = pod["containers"]
    assert container["image"] == "vllm/vllm-openai-rocm:v0.33.0"
    assert container["resources"]["limits"]["amd.com/gpu"] == "4"  # the recipe's TP4
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert pod["nodeSelector"] == {"amd.com/gpu.product-name": "AMD_Instinct_MI325_OAM"}
    assert {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert {"name": "VLLM_ROCM_USE_AITER", "value": "0"} in container["env"]
    assert "--attention-backend" not in container["args"]  # Triton DiffKV is ROCm's default


def test_a_user_image_still_wins_on_amd() -> None:
    pod = _vllm_pod({"gpu": {"type": "MI300X-192GB"}, "serving": {"image": "registry.local/vllm:rocm"}})
    assert pod["containers"][0]["image"] == "registry.local/vllm:rocm"


def test_nvidia_gpu_keeps_the_cuda_image_and_no_rocm_environment() -> None:
    pod = _vllm_pod({"gpu": {"type": "H20-96GB"}})
    (container,) = pod["containers"]
    assert container["image"] == "vllm/vllm-openai:v0.33.0"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H20"}
    assert not [e for e in container["env"] if e["name"].startswith("VLLM_ROCM")]


def test_fp8_kv_cache_on_hopper_and_blackwell_selects_the_triton_diffkv_backend() -> None:
    for gpu in ("H100-80GB", "H200-141GB", "B200-192GB", "B300-288GB"):
        args = _vllm_pod({"gpu": {"type": gpu}, "kvCacheDtype": "fp8"})["containers"][0]["args"]
        i = args.index("--attention-backend")
        assert args[i + 1] == "TRITON_ATTN_DIFFKV", gpu
        assert args[args.index("--kv-cache-dtype") + 1] == "fp8"


def test_bf16_kv_cache_leaves_the_backend_to_vllm() -> None:
    args = _vllm_pod({"gpu": {"type": "H200-141GB"}})["containers"][0]["args"]
    assert "--attention-backend" not in args and "--kv-cache-dtype" not in args


def test_defaults_render_the_recipe_context_and_no_mtp() -> None:
    args = _vllm_pod({"gpu": {"type": "H200-141GB"}})["containers"][0]["args"]
    assert args[args.index("--max-model-len") + 1] == "131072"  # the recipe's "max is 128k"
    assert "--speculative-config" not in args  # MTP is opt-in
    on = _vllm_pod({"gpu": {"type": "H200-141GB"}, "speculativeDecoding": {"mtp": "on"}})["containers"][0][
        "args"
    ]
    assert on[on.index("--speculative-config") + 1] == '{"method":"mtp","num_speculative_tokens":1}'


def test_status_plan_carries_the_planners_notes_validation_and_vllm_figures() -> None:
    from mimo_operator.render.status import plan_status

    md = parse_mimo_deployment(
        {
            "apiVersion": "serving.mimo.dev/v1alpha1",
            "kind": "MimoDeployment",
            "metadata": {"name": "m", "namespace": "llm"},
            "spec": {
                "precision": "bf16",
                "gpu": {"type": "H200-141GB"},
                # No official bf16 checkpoint exists: a copy, declared as one (the family registry).
                "model": {"name": "/models/mimo-bf16", "copyOf": "XiaomiMiMo/MiMo-V2-Flash"},
            },
        }
    )
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    status = plan_status(plan, "abc").model_dump(by_alias=True)
    # The planner's own notes used to be dropped before status: here, that it cannot check the copy.
    assert any("the planner cannot check the weight files themselves" in n for n in status["notes"])
    assert status["validation"].startswith("unvalidated:") and "bf16 weights" in status["validation"]
    assert status["vllmLogMaxConcurrency"] == plan.vllm_log_max_concurrency > 0
    assert status["attentionBackend"] == "FLASH_ATTN_DIFFKV" and status["attentionBackendFlag"] is False
