"""The MiMo family: each member planned from its own checkpoint, served with the flags vLLM 0.33.0 needs,
and anything the planner cannot size refused with the supported list.

Expected figures are computed here from the published shapes and byte totals, not read back from the
planner. Where a plan differs from a public deployment, the test says why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pytest
import yaml

from mimo_operator.api import SpecInvalid, parse_mimo_deployment
from mimo_operator.api.crd import build_crd
from mimo_operator.cli import main
from mimo_operator.models.family import KNOWN_CHECKPOINTS, known_profile
from mimo_operator.models.gpus import GIB, GPU_CATALOG
from mimo_operator.planner import Plan, PlanError
from mimo_operator.render import RenderConfig, plan_for, render_children
from mimo_operator.render.status import plan_status
from tests.vllm_cli.harness import ServeParse, parse_serve_args, vllm_source_dir

FLASH, V25, PRO = "XiaomiMiMo/MiMo-V2-Flash", "XiaomiMiMo/MiMo-V2.5", "XiaomiMiMo/MiMo-V2.5-Pro"
PRO_INDEX_BYTES = 1_033_369_538_304  # model.safetensors.index.json metadata.total_size (fixture README)


def _md(spec: dict[str, Any], name: str = "mimo") -> Any:
    body = {
        "apiVersion": "serving.mimo.dev/v1alpha1",
        "kind": "MimoDeployment",
        "metadata": {"name": name, "namespace": "llm", "uid": "00000000-0000-0000-0000-0000000000aa"},
        "spec": spec,
    }
    return parse_mimo_deployment(body)


def _plan(spec: dict[str, Any]) -> Plan | PlanError:
    outcome: Plan | PlanError = plan_for(_md(spec).spec)
    return outcome


def _numbers(text: str, unit: str) -> list[float]:
    return [float(m) for m in re.findall(rf"([0-9.]+) {unit}", text)]


# --- refusing what cannot be planned -------------------------------------------------------------


def test_an_unknown_model_is_refused_with_the_supported_list() -> None:
    error = _plan({"model": {"name": "someone/MiMo-V3-Mega"}})
    assert isinstance(error, PlanError) and error.reason == "UnknownModel"
    for name in KNOWN_CHECKPOINTS:
        assert name in error.message
    assert "spec.model.config" in error.message


def test_the_cli_refuses_an_unknown_model_with_the_supported_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--model", "someone/MiMo-V3-Mega"]) == 1
    err = capsys.readouterr().err
    assert all(name in err for name in KNOWN_CHECKPOINTS)


def test_the_crd_refuses_unknown_names_unless_a_copy_or_config_is_declared() -> None:
    model = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"
    ]["model"]
    [rule] = [r for r in model["x-kubernetes-validations"] if " in [" in r["rule"]]
    listed = re.findall(r"'([^']+)'", rule["rule"].split(" in ", 1)[1].split("]", 1)[0])
    assert sorted(listed) == sorted(KNOWN_CHECKPOINTS)
    assert "has(self.copyOf)" in rule["rule"] and "has(self.config)" in rule["rule"]
    assert all(name in rule["message"] for name in KNOWN_CHECKPOINTS)
    assert model["properties"]["copyOf"]["enum"] == list(KNOWN_CHECKPOINTS)


@pytest.mark.parametrize("name", sorted(KNOWN_CHECKPOINTS))
def test_precision_must_match_the_checkpoint(name: str) -> None:
    error = _plan({"model": {"name": name}, "precision": "bf16", "gpu": {"type": "B200-192GB"}})
    assert isinstance(error, PlanError) and error.reason == "PrecisionMismatch"
    # Says what the checkpoint is and the two ways out.
    assert "stored in fp8" in error.message and "precision: fp8" in error.message
    assert f"spec.model.copyOf: {name}" in error.message


def test_a_declared_bf16_copy_is_planned_with_the_architecture_it_copies() -> None:
    plan = _plan(
        {
            "model": {"name": "/models/MiMo-V2-Flash-bf16", "copyOf": FLASH},
            "precision": "bf16",
            "gpu": {"type": "H100-80GB"},
        }
    )
    # ~618 GB of bf16 weights (~309B parameters x 2 bytes) need two 8x H100 nodes.
    assert isinstance(plan, Plan)
    assert (plan.nodes_per_replica, plan.tensor_parallel, plan.pipeline_parallel) == (2, 8, 2)
    assert plan.checkpoint_gib * GIB / 1e9 == pytest.approx(618, rel=0.01)


def _config_text(fixture: str, **changes: Any) -> str:
    config = json.loads(resources.files("mimo_operator.models").joinpath("checkpoints", fixture).read_text())
    config.update(changes)
    for key, value in list(changes.items()):
        if value is None:
            del config[key]
    return json.dumps(config)


def test_a_fine_tune_is_planned_from_its_own_config() -> None:
    config = _config_text("mimo-v2.5-pro.config.json")
    own = _plan({"model": {"name": "acme/pro-sft", "config": config}, "gpu": {"type": "B200-192GB"}})
    known = _plan(
        {"model": {"name": PRO}, "gpu": {"type": "B200-192GB"}, "speculativeDecoding": {"mtp": "on"}}
    )
    assert isinstance(own, Plan) and isinstance(known, Plan)
    # Same shapes, same layout. The fine-tune's config declares no MTP blocks, so the plan loads none
    # and renders no --speculative-config (vLLM would fail to find the drafter's weights).
    assert own.tensor_parallel == known.tensor_parallel == 8
    assert not own.mtp and known.mtp
    assert own.weights_gib_per_gpu < known.weights_gib_per_gpu
    assert any("acme/pro-sft" in note and "cannot check the weight files" in note for note in own.notes)
    on = _plan(
        {
            "model": {"name": "acme/pro-sft", "config": config},
            "gpu": {"type": "B200-192GB"},
            "speculativeDecoding": {"mtp": "on"},
        }
    )
    assert isinstance(on, PlanError) and on.reason == "NoMtpWeights"


def test_a_fine_tune_config_without_a_needed_key_is_refused_naming_it() -> None:
    config = _config_text("mimo-v2.5-pro.config.json", swa_num_key_value_heads=None)
    error = _plan({"model": {"name": "acme/pro-sft", "config": config}, "gpu": {"type": "B200-192GB"}})
    assert isinstance(error, PlanError) and error.reason == "ModelConfigIncomplete"
    assert "swa_num_key_value_heads" in error.message


def test_context_is_bounded_by_each_checkpoint_s_own_max_position_embeddings() -> None:
    flash = _plan(
        {"model": {"name": FLASH}, "gpu": {"type": "B200-192GB"}, "context": {"maxModelLen": 1048576}}
    )
    assert isinstance(flash, PlanError) and flash.reason == "ContextTooLong" and "262144" in flash.message
    v25 = _plan({"model": {"name": V25}, "gpu": {"type": "B200-192GB"}, "context": {"maxModelLen": 1048576}})
    assert isinstance(v25, Plan) and v25.max_model_len == 1048576


def test_multimodal_limits_are_refused_for_text_models() -> None:
    error = _plan({"model": {"name": PRO, "multimodalLimits": {"image": 0}}, "gpu": {"type": "B200-192GB"}})
    assert isinstance(error, PlanError) and error.reason == "ModelNotMultimodal"


# --- MiMo-V2.5-Pro: 1 TB of fp8 weights -------------------------------------------------------------


def test_pro_on_4x_h200_is_refused_with_the_numbers() -> None:
    # The CR from the issue, pinned to the 4 GPUs it used to get: TP4 on one H200 node.
    error = _plan(
        {
            "model": {"name": PRO},
            "precision": "fp8",
            "gpu": {"type": "H200-141GB"},
            "parallelism": {"tensor": 4, "pipeline": 1},
        }
    )
    assert isinstance(error, PlanError), error
    need, _reserved, _total, offered = _numbers(error.message, "GiB")[:4]
    # A quarter of the checkpoint per GPU (the index total; MTP blocks are <1% of it).
    assert need == pytest.approx(PRO_INDEX_BYTES / 4 / GIB, rel=0.02)
    h200 = GPU_CATALOG["H200-141GB"]
    assert offered == pytest.approx(h200.memory_mib / 1024 * 0.90, abs=0.1)


def test_pro_on_h200_is_planned_on_enough_gpus() -> None:
    auto = _plan({"model": {"name": PRO}, "gpu": {"type": "H200-141GB"}})
    assert isinstance(auto, Plan)
    # ~962 GiB of weights need at least all 8 GPUs of a node (the CR got 4).
    assert auto.gpus_per_replica >= 8 and auto.tensor_parallel == 8
    # An eighth of the checkpoint per GPU (MTP blocks and replicated norms/routers are <1% of it).
    assert auto.weights_gib_per_gpu * auto.pipeline_parallel == pytest.approx(
        PRO_INDEX_BYTES / 8 / GIB, rel=0.02
    )
    full = _plan({"model": {"name": PRO}, "gpu": {"type": "H200-141GB"}, "context": {"maxModelLen": 1048576}})
    # A 1M-token request needs 10 full-attention layers x 1 KV head x (192 + 128) x 2 B = 6400 B per
    # token per GPU at TP8 (6.3 GiB): one node has no room for it, two nodes (TP8 x PP2) do.
    assert isinstance(full, Plan)
    assert (full.nodes_per_replica, full.tensor_parallel, full.pipeline_parallel) == (2, 8, 2)


def test_pro_on_80gb_parts_spans_nodes() -> None:
    plan = _plan({"model": {"name": PRO}, "gpu": {"type": "H100-80GB"}})
    assert isinstance(plan, Plan)
    # 962 GiB over 8 GPUs is 120 GiB each, more than an 80 GB part: at least two nodes, one
    # pipeline stage per node, MTP off (vLLM's MTP needs a single pipeline stage).
    assert plan.nodes_per_replica >= 2 and plan.pipeline_parallel == plan.nodes_per_replica
    assert plan.weights_gib_per_gpu < GPU_CATALOG["H100-80GB"].memory_mib / 1024
    assert not plan.mtp


def test_pro_on_b200_is_one_node_tp8_as_the_sglang_cookbook_verified() -> None:
    # SGLang cookbook, MiMo-V2.5 page, "Configuration Tips": "MiMo-V2.5-Pro ... B200: single node,
    # TP=8 (verified)".
    plan = _plan({"model": {"name": PRO}, "gpu": {"type": "B200-192GB"}, "context": {"maxModelLen": 1048576}})
    assert isinstance(plan, Plan)
    assert (plan.gpus_per_replica, plan.nodes_per_replica, plan.tensor_parallel) == (8, 1, 8)
    assert plan.max_concurrent_at_max_len >= 1


# --- MiMo-V2.5: the V2-Flash backbone with encoders and 1M context ---------------------------------------


def test_v2_5_on_4x_b200_at_1m_context() -> None:
    # A public model-hosting example serves MiMo-V2.5 fp8 with vLLM on 4x B200 at 1M context and 64
    # concurrent requests (README, "The MiMo family").
    plan = _plan(
        {
            "model": {"name": V25},
            "gpu": {"type": "B200-192GB"},
            "parallelism": {"tensor": 4},
            "context": {"maxModelLen": 1048576},
        }
    )
    assert isinstance(plan, Plan)
    assert (plan.gpus_per_replica, plan.max_model_len) == (4, 1048576)
    # KV per token per GPU at TP4: 9 full-attention layers x 1 KV head x (192 + 128) x 2 B.
    assert plan.kv_bytes_per_token_per_gpu == 9 * 1 * 320 * 2
    # Where we differ: 64 requests of 1M tokens each would need 64 x 6.0 GB of KV per GPU. The
    # plan counts max-length requests (a handful fit); the example's 64 concurrent requests share
    # the pool, which holds 64 requests of this many tokens each on average:
    assert plan.max_concurrent_at_max_len < 64
    assert plan.kv_cache_tokens // 64 > 32768


def test_v2_5_text_only_leaves_the_encoders_out() -> None:
    spec = {"model": {"name": V25}, "gpu": {"type": "H200-141GB"}}
    omni = _plan(spec)
    text = _plan({**spec, "model": {"name": V25, "multimodalLimits": {"image": 0, "video": 0, "audio": 0}}})
    assert isinstance(omni, Plan) and isinstance(text, Plan)
    assert omni.tensor_parallel == text.tensor_parallel == 4
    # ViT 729M split over TP4 plus the 261M audio encoder on every rank, in bf16 (model card).
    saved = (729e6 / 4 + 261e6) * 2 / GIB
    assert omni.weights_gib_per_gpu - text.weights_gib_per_gpu == pytest.approx(saved, abs=0.02)
    # The plan tells a person the encoders cost memory, and how to leave them out.
    assert any("multimodalLimits" in note for note in omni.notes)
    assert not any("multimodalLimits" in note for note in text.notes)


@pytest.mark.parametrize("gpu", ["H100-80GB", "H200-141GB", "B200-192GB"])
def test_v2_5_plans_like_v2_flash_plus_its_encoders(gpu: str) -> None:
    flash = _plan({"model": {"name": FLASH}, "gpu": {"type": gpu}, "context": {"maxModelLen": 131072}})
    v25 = _plan({"model": {"name": V25}, "gpu": {"type": gpu}, "context": {"maxModelLen": 131072}})
    assert isinstance(flash, Plan) and isinstance(v25, Plan)
    # SGLang cookbook: V2.5 on H100/H200 runs the same layouts as V2-Flash (TP8 on H100, TP4 on H200).
    assert v25.tensor_parallel == flash.tensor_parallel
    assert v25.kv_bytes_per_token_per_gpu == flash.kv_bytes_per_token_per_gpu
    assert 0 < v25.weights_gib_per_gpu - flash.weights_gib_per_gpu < 2.0


# --- every rendered command line parses with vLLM 0.33.0 ----------------------------------------------

RENDERED: list[tuple[str, dict[str, Any]]] = [
    (f"{model}/{gpu}", {"model": {"name": model}, "gpu": {"type": gpu}})
    for model in (FLASH, V25, PRO)
    for gpu in ("H100-80GB", "H200-141GB", "B200-192GB")
] + [
    ("v25-text-only", {"model": {"name": V25, "multimodalLimits": {"image": 0, "video": 0, "audio": 0}}}),
    ("v25-one-image", {"model": {"name": V25, "multimodalLimits": {"image": 1, "audio": 0}}}),
    (
        "pro-1m-h200",
        {"model": {"name": PRO}, "gpu": {"type": "H200-141GB"}, "context": {"maxModelLen": 1048576}},
    ),
]


def _serve_lines() -> list[tuple[str, list[str]]]:
    lines = []
    for case, spec in RENDERED:
        md = _md({"gpu": {"type": "H200-141GB"}, **spec})
        plan = plan_for(md.spec)
        assert isinstance(plan, Plan), (case, plan)
        for sts in (c for c in render_children(md, plan, RenderConfig()) if c["kind"] == "StatefulSet"):
            container = sts["spec"]["template"]["spec"]["containers"][0]
            args = [a.replace("$(NODE_RANK)", "0") for a in container["args"]]
            lines.append((case, args))
    return lines


LINES = _serve_lines()


@pytest.fixture(scope="module")
def parsed() -> list[ServeParse]:
    return parse_serve_args([args for _, args in LINES])


def test_every_family_serve_line_parses(parsed: list[ServeParse]) -> None:
    for (case, _), result in zip(LINES, parsed, strict=True):
        assert result.ok, f"{case}: {result.error}"


def test_multimodal_limits_reach_vllm(parsed: list[ServeParse]) -> None:
    by_case = {case: result.parsed for (case, _), result in zip(LINES, parsed, strict=True)}
    assert by_case["v25-text-only"]["limit_mm_per_prompt"] == {"image": 0, "video": 0, "audio": 0}
    assert by_case["v25-one-image"]["limit_mm_per_prompt"] == {"image": 1, "audio": 0}
    assert by_case["pro-1m-h200"]["max_model_len"] == 1048576


# --- what vLLM 0.33.0 itself does with each member ------------------------------------------------------


def _source(rel: str) -> str:
    return (vllm_source_dir() / rel).read_text()


def test_vllm_registers_every_family_architecture() -> None:
    registry = _source("model_executor/models/registry.py")
    for arch in ("MiMoV2FlashForCausalLM", "MiMoV2ForCausalLM", "MiMoV2OmniForCausalLM"):
        assert f'"{arch}": (' in registry
    for name in KNOWN_CHECKPOINTS:
        assert known_profile(name).architecture in registry


def test_v2_5_needs_no_architectures_override_in_vllm_0_33() -> None:
    # MiMo-V2.5's config.json names MiMoV2ForCausalLM (the text model); vLLM 0.33.0 switches to the
    # omnimodal class by itself when the config has a vision_config, so the renderer adds no
    # --hf-overrides (one public command line for an older vLLM did).
    convertor = _source("transformers_utils/model_arch_config_convertor.py")
    block = convertor.split("class MimoV2ModelArchConfigConvertor", 1)[1].split("\nclass ", 1)[0]
    assert 'if getattr(hf_config, "vision_config", None):' in block
    assert 'hf_config.architectures = ["MiMoV2OmniForCausalLM"]' in block
    assert KNOWN_CHECKPOINTS[V25].serving.vllm_architecture == "MiMoV2OmniForCausalLM"
    assert "vision_config" in json.loads(_config_text("mimo-v2.5.config.json"))


def test_vllm_skips_encoders_limited_to_zero_and_mtp_covers_every_member() -> None:
    interfaces = _source("model_executor/models/interfaces.py")
    assert "if all(mm_config.get_limit_per_prompt(m) == 0 for m in modalities)" in interfaces
    omni = _source("model_executor/models/mimo_v2_omni.py")
    assert 'self._mark_tower_model(vllm_config, {"image", "video"})' in omni
    assert 'self._mark_tower_model(vllm_config, "audio")' in omni
    speculative = _source("config/speculative.py")
    assert '"MiMoV2ForCausalLM": "MiMoV2MTPModel"' in speculative
    assert '"MiMoV2OmniForCausalLM": "MiMoV2OmniMTPModel"' in speculative


def test_the_cli_plans_a_fine_tune_from_its_config_file(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.json"
    path.write_text(_config_text("mimo-v2.5-pro.config.json"))
    assert main(["plan", "--model", "acme/pro-sft", "--model-config", str(path), "--gpu", "B200-192GB"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("fp8 on 8x B200-192GB: TP8,") and "cannot check the weight files" in out
    path.write_text("{not json")
    assert main(["plan", "--model", "acme/pro-sft", "--model-config", str(path)]) == 1


def test_a_copy_and_a_config_together_are_refused() -> None:
    with pytest.raises(SpecInvalid, match="one of copyOf, config and configFrom"):
        _md(
            {
                "model": {
                    "name": "/models/x",
                    "copyOf": FLASH,
                    "config": _config_text("mimo-v2-flash.config.json"),
                }
            }
        )


def test_public_runs_validate_only_the_checkpoint_they_ran() -> None:
    # SGLang's TP8 on H100 ran MiMo-V2-Flash; the same layout of MiMo-V2.5 is not validated by it.
    flash = _plan({"model": {"name": FLASH}, "gpu": {"type": "H100-80GB"}})
    v25 = _plan({"model": {"name": V25}, "gpu": {"type": "H100-80GB"}})
    assert isinstance(flash, Plan) and isinstance(v25, Plan)
    assert flash.tensor_parallel == v25.tensor_parallel == 8
    assert flash.validated and not v25.validated
    assert "no public run uses this layout" in v25.validation
    # MiMo-V2.5 on 4x H200 at TP4 is its own vLLM recipe's verified run, at the context vLLM's `auto`
    # reaches (the checkpoint's 1M), which MiMo-V2-Flash's recipe ("max is 128k") does not claim.
    for context in (131072, 1048576):
        own = _plan(
            {"model": {"name": V25}, "gpu": {"type": "H200-141GB"}, "context": {"maxModelLen": context}}
        )
        assert isinstance(own, Plan) and own.validated and "MiMo-V2.5*.yaml" in own.validation
    long_flash = _plan(
        {"model": {"name": FLASH}, "gpu": {"type": "H200-141GB"}, "context": {"maxModelLen": 262144}}
    )
    assert isinstance(long_flash, Plan) and not long_flash.validated
    assert "above the recipe's stated maximum of 128K" in long_flash.validation
    # MiMo-V2.5-Pro on one B200 node at TP8 is the SGLang cookbook's verified run.
    pro = _plan({"model": {"name": PRO}, "gpu": {"type": "B200-192GB"}})
    assert isinstance(pro, Plan) and pro.validated and "SGLang cookbook" in pro.validation


def test_the_planner_s_notes_reach_status_plan() -> None:
    plan = _plan({"model": {"name": PRO}, "gpu": {"type": "B200-192GB"}})
    assert isinstance(plan, Plan)
    notes = plan_status(plan, "0123456789").notes
    assert any("21d1ecfecd7b" in note and "spec.model.revision" in note for note in notes)


# --- plans beside the public deployments of the family ----------------------------------------------


@dataclass(frozen=True)
class PublicRun:
    """A published deployment: how many GPUs of a kind one copy of the model ran on, and over how many
    ranks one attention layer was split (SGLang with DP attention: tp / dp)."""

    source: str
    model: str
    gpu: str
    gpus: int
    attention_tp: int
    context: int | None = None


# Sources with commits: models/checkpoints/README.md, "Public deployments".
_SGLANG = "SGLang cookbook, MiMo-V2.5 page (mimo-v25-deployment.jsx)"
_RECIPES = "vLLM recipes (vllm-project/recipes models/XiaomiMiMo/*.yaml)"
PUBLIC_RUNS = [
    PublicRun(f"{_SGLANG}: H200 tp=8, dp=2", V25, "H200-141GB", 8, 4),
    PublicRun(f"{_SGLANG}: H100 tp=8, dp=2", V25, "H100-80GB", 8, 4),
    PublicRun(f"{_SGLANG}: B200 tp=4, dp=1", V25, "B200-192GB", 4, 4),
    PublicRun(f"{_SGLANG}: V2.5-Pro H200 tp=16, 2 nodes, dp=2", PRO, "H200-141GB", 16, 8),
    PublicRun(f"{_SGLANG}: V2.5-Pro H100 tp=16, 2 nodes, dp=2", PRO, "H100-80GB", 16, 8),
    PublicRun(f"{_SGLANG}: V2.5-Pro B200 tp=8, single node", PRO, "B200-192GB", 8, 8),
    PublicRun(f"{_RECIPES}: MiMo-V2.5, 4x H200 TP4, 1M context", V25, "H200-141GB", 4, 4, 1048576),
    PublicRun(f"{_RECIPES}: MiMo-V2.5-Pro, 8x H200 TP8", PRO, "H200-141GB", 8, 8),
    PublicRun(f"{_RECIPES}: MiMo-V2-Flash, 4x H200 TP4", FLASH, "H200-141GB", 4, 4),
    PublicRun(
        "Modal example: MiMo-V2.5 on H200:4, TP4, --max-model-len 32768", V25, "H200-141GB", 4, 4, 32768
    ),
    PublicRun("Baseten: MiMo-V2.5 FP8 on B200 x 4, context 1M", V25, "B200-192GB", 4, 4, 1048576),
]


@pytest.mark.parametrize(
    "run", PUBLIC_RUNS, ids=[f"{r.model.rsplit('/', 1)[1]}-{r.gpu}-{r.gpus}" for r in PUBLIC_RUNS]
)
def test_plans_beside_public_deployments(run: PublicRun) -> None:
    context = {"context": {"maxModelLen": run.context}} if run.context else {}
    ours = _plan({"model": {"name": run.model}, "gpu": {"type": run.gpu}, **context})
    assert isinstance(ours, Plan), ours
    # Never more GPUs than a run that works, and their deployment is whole copies of ours.
    assert ours.gpus_per_replica <= run.gpus and run.gpus % ours.gpus_per_replica == 0, run.source
    if ours.gpus_per_replica == run.gpus:
        return
    # Where we use fewer: the planner takes the fewest GPUs that hold the weights and one request of
    # the context (README "How the planner decides"); the public run spends the rest on KV room or on
    # data-parallel copies. Pinned to their GPU count, the plan is feasible too and holds more KV, so
    # the difference is capacity, not a layout that would fail.
    nodes = -(-run.gpus // GPU_CATALOG[run.gpu].default_per_node)
    pinned = _plan(
        {
            "model": {"name": run.model},
            "gpu": {"type": run.gpu},
            "parallelism": {"tensor": run.gpus // nodes, "pipeline": nodes},
            **context,
        }
    )
    assert isinstance(pinned, Plan), (run.source, pinned)
    assert pinned.gpus_per_replica == run.gpus
    assert pinned.kv_cache_tokens * pinned.data_parallel > ours.kv_cache_tokens, run.source


# --- spec.model.configFrom: checkpoint (the config.json the download Job read) --------------------

_FROM_CHECKPOINT = {
    "model": {
        "name": "acme/v25-sft",
        "configFrom": "checkpoint",
        "cache": {"volumeClaimTemplate": {"size": "400Gi"}},
    },
    "gpu": {"type": "H200-141GB"},
}


def test_a_fine_tune_read_from_its_weights_waits_for_them_then_plans_as_its_config() -> None:
    spec = _md(_FROM_CHECKPOINT).spec
    waiting = plan_for(spec)
    assert isinstance(waiting, PlanError) and waiting.reason == "AwaitingCheckpointConfig"
    assert "acme/v25-sft" in waiting.message and "download Job" in waiting.message

    text = _config_text("mimo-v2.5.config.json")
    from_weights = plan_for(spec, text)
    given = _plan({**_FROM_CHECKPOINT, "model": {"name": "acme/v25-sft", "config": text}})
    assert isinstance(from_weights, Plan) and isinstance(given, Plan)
    assert from_weights == given


def test_a_checkpoint_config_in_another_precision_names_where_it_came_from() -> None:
    text = _config_text("mimo-v2.5.config.json", quantization_config=None)
    error = plan_for(_md(_FROM_CHECKPOINT).spec, text)
    assert isinstance(error, PlanError) and error.reason == "PrecisionMismatch"
    assert "checkpoint's config.json" in error.message and "set precision: bf16" in error.message
    incomplete = plan_for(
        _md(_FROM_CHECKPOINT).spec, _config_text("mimo-v2.5.config.json", num_hidden_layers=None)
    )
    assert isinstance(incomplete, PlanError) and incomplete.reason == "ModelConfigIncomplete"
    assert incomplete.message.startswith("the config.json of acme/v25-sft (read by the download Job)")


def test_config_from_checkpoint_needs_a_cache_the_operator_fills() -> None:
    node_local = {"hostPath": {"path": "/mnt/nvme"}, "fetch": "job"}
    for cache in (None, {"persistentVolumeClaim": {"claimName": "w", "readOnly": True}}, node_local):
        model = {"name": "acme/v25-sft", "configFrom": "checkpoint", "cache": cache}
        with pytest.raises(SpecInvalid, match="fetch: job"):
            _md({"model": {k: v for k, v in model.items() if v is not None}})
    with pytest.raises(SpecInvalid, match="one of copyOf, config and configFrom"):
        _md({"model": {**_FROM_CHECKPOINT["model"], "config": _config_text("mimo-v2.5.config.json")}})


def test_render_of_a_fine_tune_read_from_its_weights_shows_what_comes_first(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sft.yaml"
    body = {"apiVersion": "serving.mimo.dev/v1alpha1", "kind": "MimoDeployment", "metadata": {"name": "sft"}}
    path.write_text(json.dumps({**body, "spec": _FROM_CHECKPOINT}))

    assert main(["render", "-f", str(path)]) == 0

    captured = capsys.readouterr()
    assert sorted(doc["kind"] for doc in yaml.safe_load_all(captured.out)) == [
        "Job",
        "NetworkPolicy",
        "PersistentVolumeClaim",
    ]
    assert "config.json" in captured.err and "mimo-operator plan --model acme/v25-sft" in captured.err
