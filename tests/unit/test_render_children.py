"""What a platform engineer checks in rendered children, each derived from the spec and the plan."""

import dataclasses
import math
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan, PlanError
from mimo_operator.render import RenderConfig, plan_for, plan_hash, render_children
from tests.unit.kubelet import POD_INDEX_LABEL, container_env, exec_argv, statefulset_pods
from tests.unit.test_render_golden import GOLDEN, SCENARIOS

REMOVED_FLAGS = {
    "--disable-log-requests",
    "--swap-space",
    "--num-redundant-experts",
    "--cuda-graph-sizes",
    "--task",
    "--disable-frontend-multiprocessing",
    "--quantization",
}


def _load(name: str, **spec_changes: Any) -> Any:
    body = yaml.safe_load((GOLDEN / f"{name}.input.yaml").read_text())
    body["spec"].update(spec_changes)
    return parse_mimo_deployment(body)


def _render(md: Any) -> tuple[Plan, list[dict[str, Any]]]:
    result = plan_for(md.spec)
    assert isinstance(result, Plan), result
    return result, render_children(md, result, RenderConfig())


def _of_kind(children: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c for c in children if c["kind"] == kind]


def _container(sts: dict[str, Any]) -> dict[str, Any]:
    return sts["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_child_validates_against_kubernetes_1_35_openapi(name: str) -> None:
    _, children = _render(_load(name))
    for child in children:
        kubernetes_validate.validate(child, "1.35.0", strict=True)


@pytest.mark.parametrize("name", SCENARIOS)
def test_children_are_owned_and_deterministic(name: str) -> None:
    md = _load(name)
    _, first = _render(md)
    _, second = _render(md)
    assert first == second
    for child in first:
        (ref,) = child["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "MimoDeployment",
            md.metadata.name,
            md.metadata.uid,
            True,
        )
        assert child["metadata"]["namespace"] == md.metadata.namespace
        assert child["metadata"]["name"] != "vllm"


@pytest.mark.parametrize("name", SCENARIOS)
def test_gpus_and_parallel_flags_follow_the_plan(name: str) -> None:
    md = _load(name)
    plan, children = _render(md)
    for sts in _of_kind(children, "StatefulSet"):
        container = _container(sts)
        assert container["resources"]["limits"]["nvidia.com/gpu"] == str(plan.gpus_per_pod)
        assert container["resources"]["requests"] == container["resources"]["limits"]
        args = container["args"]
        flag = dict(zip(args, [*args[1:], ""], strict=True))
        assert int(flag["--tensor-parallel-size"]) == plan.tensor_parallel
        assert int(flag.get("--pipeline-parallel-size", "1")) == plan.pipeline_parallel
        assert int(flag["--max-model-len"]) == plan.max_model_len
        assert ("--enable-expert-parallel" in args) == plan.expert_parallel
        assert not REMOVED_FLAGS & set(args), "a removed vLLM flag was emitted"
        # GPUs per pod x pods per group = GPUs per replica
        assert plan.gpus_per_pod * plan.nodes_per_replica == plan.gpus_per_replica
        pod = sts["spec"]["template"]["spec"]
        assert pod["nodeSelector"]["nvidia.com/gpu.product"].startswith("NVIDIA-")
        dshm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert dshm["emptyDir"]["medium"] == "Memory"


def test_multi_node_groups_one_statefulset_per_replica() -> None:
    md = _load("bf16-h100-multinode")
    plan, children = _render(md)
    groups = _of_kind(children, "StatefulSet")
    assert plan.nodes_per_replica == 2
    assert len(groups) == md.spec.replicas
    for index, sts in enumerate(groups):
        assert sts["spec"]["replicas"] == plan.nodes_per_replica
        container = _container(sts)
        assert container["command"][:2] == ["/bin/sh", "-c"]
        assert "--headless" in container["command"][2]  # ranks above 0 join headless
        args = container["args"]
        assert args[args.index("--master-addr") + 1] == f"{sts['metadata']['name']}-0.mimo-bf16-pods.llm.svc"
        assert args[args.index("--nnodes") + 1] == "2"
        assert "httpGet" not in container["startupProbe"]  # headless workers serve no HTTP
        assert sts["metadata"]["name"] == f"mimo-bf16-r{index}"
    api = next(c for c in _of_kind(children, "Service") if c["metadata"]["name"] == "mimo-bf16")
    assert api["spec"]["selector"]["apps.kubernetes.io/pod-index"] == "0"


def test_single_node_replicas_share_one_statefulset_with_http_probes() -> None:
    md = _load("fp8-h100")
    _, children = _render(md)
    (sts,) = _of_kind(children, "StatefulSet")
    assert sts["spec"]["replicas"] == 2
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert _container(sts)["readinessProbe"]["httpGet"]["path"] == "/health"
    assert _container(sts)["command"] == ["vllm", "serve"]


def test_secrets_are_referenced_never_inlined() -> None:
    md = _load("fp8-h100")
    _, children = _render(md)
    container = _container(_of_kind(children, "StatefulSet")[0])
    env = {e["name"]: e for e in container["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert env["VLLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "mimo-api-key", "key": "key"}
    assert "--api-key" not in container["args"]


# The documented budget (render/probes.py, README "Probes sized for a 300 GB load"): weights per pod
# (GiB x 1024 = MiB) / loadRateMiBps + engine start (RenderConfig.engine_init_seconds, 420 s by
# default), rounded up to the 10 s probe period; failureThreshold = budget / 10, and vLLM's
# VLLM_ENGINE_READY_TIMEOUT_S = the same budget. Each case's numbers are worked out by hand, with
# the pod's weights set on the plan so the case does not move when the planner's estimate does.
# (case, spec.probes, weights GiB per pod, engine init s, expected budget s)
BUDGET_CASES = [
    # 300 x 1024 = 307200 MiB; / 400 = 768 s; + 420 = 1188 s; up to a multiple of 10: 1190 s.
    ("300 GiB at the default 400 MiB/s", {}, 300.0, 420, 1190),
    # 291.4 x 1024 = 298393.6 MiB; / 400 = 745.984 s; + 420 = 1165.984 s; rounded up: 1170 s.
    ("fp8 TP8 pod, 291.4 GiB", {}, 291.4, 420, 1170),
    # 200 x 1024 = 204800 MiB; / 400 = 512 s; + 420 = 932 s; 2 s past 930, so up to 940 s (not 930).
    ("2 s past a period rounds up", {}, 200.0, 420, 940),
    # 100 x 1024 = 102400 MiB; / 1024 = 100 s; + 420 = 520 s, already a multiple of 10: 520 s.
    ("exact multiple of the period", {"loadRateMiBps": 1024}, 100.0, 420, 520),
    # 145.7 x 1024 = 149196.8 MiB; / 1000 = 149.1968 s; + 420 = 569.1968 s; rounded up: 570 s.
    ("fast storage, 1000 MiB/s", {"loadRateMiBps": 1000}, 145.7, 420, 570),
    # 300 x 1024 / 400 = 768 s; + 600 = 1368 s; rounded up: 1370 s.
    ("slower engine start, 600 s", {}, 300.0, 600, 1370),
    # An explicit budget is used as given, whatever the weights: 3600 s, 360 failures x 10 s.
    ("explicit 3600 s", {"startupBudgetSeconds": 3600}, 300.0, 420, 3600),
]


@pytest.mark.parametrize(
    ("probes", "weights_gib", "engine_init", "budget"),
    [case[1:] for case in BUDGET_CASES],
    ids=[case[0] for case in BUDGET_CASES],
)
@pytest.mark.parametrize("scenario", ["fp8-h100", "bf16-h100-multinode"])
def test_startup_budget_is_weights_over_load_rate_plus_engine_start(
    scenario: str, probes: dict[str, int], weights_gib: float, engine_init: int, budget: int
) -> None:
    md = _load(scenario, probes=probes)
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan), plan
    plan = dataclasses.replace(plan, weights_gib_per_pod=weights_gib)
    children = render_children(md, plan, RenderConfig(engine_init_seconds=engine_init))
    for sts in _of_kind(children, "StatefulSet"):
        container = _container(sts)
        probe = container["startupProbe"]
        assert (probe["periodSeconds"], probe["failureThreshold"]) == (10, budget // 10)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["VLLM_ENGINE_READY_TIMEOUT_S"] == str(budget)


def test_pdb_only_with_more_than_one_replica() -> None:
    _, two = _render(_load("fp8-h100"))
    _, one = _render(_load("fp8-h100", replicas=1))
    assert _of_kind(two, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1
    assert not _of_kind(one, "PodDisruptionBudget")


def test_autoscaling_targets_the_mimodeployment_and_clamps_replicas() -> None:
    md = _load("autoscaling", replicas=9)
    _, children = _render(md)
    (hpa,) = _of_kind(children, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "serving.mimo.dev/v1alpha1",
        "kind": "MimoDeployment",
        "name": "mimo-auto",
    }
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"
    # Scale-up waits for the queue to persist, then adds one replica per start-up window (issue 19).
    probe = _container(_of_kind(children, "StatefulSet")[0])["startupProbe"]
    (policy,) = hpa["spec"]["behavior"]["scaleUp"]["policies"]
    assert policy["periodSeconds"] == probe["periodSeconds"] * probe["failureThreshold"]
    assert 0 < hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] < policy["periodSeconds"]
    assert _of_kind(children, "StatefulSet")[0]["spec"]["replicas"] == 4  # clamped to maxReplicas


def test_plan_hash_ignores_replicas_but_tracks_what_pods_run() -> None:
    base = _load("fp8-h100")
    plan, _ = _render(base)
    config = RenderConfig()
    digest = plan_hash(base, plan, config)
    scaled = _load("fp8-h100", replicas=5)
    assert plan_hash(scaled, plan, config) == digest
    for change in (
        {"context": {"maxModelLen": 65536}},
        {"serving": {"image": "vllm/vllm-openai:v0.33.1"}},
        {"precision": "int4", "model": {"name": "/models/int4", "copyOf": "XiaomiMiMo/MiMo-V2-Flash"}},
        {"gpu": {"type": "H200-141GB"}},
    ):
        md = _load("fp8-h100", **change)
        changed_plan, _ = _render(md)
        assert plan_hash(md, changed_plan, config) != digest, change


def test_user_placement_and_extra_args_are_kept() -> None:
    md = _load("placement-extra-args")
    _, children = _render(md)
    pod = _of_kind(children, "StatefulSet")[0]["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["topology.kubernetes.io/zone"] == "zone-a"
    assert {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    assert pod["priorityClassName"] == "llm-serving"
    args = pod["containers"][0]["args"]
    assert args[-2:] == ["--max-num-seqs=256", "--enable-prefix-caching"]  # appended last
    assert pod["containers"][0]["startupProbe"]["failureThreshold"] * 10 == 3600


def test_owned_flags_in_extra_args_are_refused_with_the_field_name() -> None:
    md = _load("fp8-h100", serving={"extraArgs": ["--tensor-parallel-size=4"]})
    result = plan_for(md.spec)
    assert isinstance(result, PlanError)
    assert "spec.serving.extraArgs" in result.message and "--tensor-parallel-size" in result.message


def test_disabling_hybrid_kv_in_extra_args_changes_the_plan() -> None:
    on = plan_for(_load("fp8-h100").spec)
    off = plan_for(_load("fp8-h100", serving={"extraArgs": ["--disable-hybrid-kv-cache-manager"]}).spec)
    assert isinstance(on, Plan) and isinstance(off, Plan)
    assert off.kv_bytes_per_token_per_gpu > 5 * on.kv_bytes_per_token_per_gpu
    assert math.isclose(off.weights_gib_per_gpu, on.weights_gib_per_gpu)


@pytest.mark.parametrize(
    "arg",
    [
        "-tp",
        "-tp=4",
        "--tensor_parallel_size=4",
        "--max-model 1000",
        "--max-model-len=1000",
        "-n2",
        "--port=9",
    ],
)
def test_every_spelling_of_an_owned_flag_is_refused_when_rendering(arg: str) -> None:
    # The CRD refuses these at apply; an object that bypassed validation is refused again here.
    result = plan_for(_load("fp8-h100", serving={"extraArgs": ["--enable-prefix-caching", arg]}).spec)
    assert isinstance(result, PlanError) and result.reason == "ExtraArgsOwnedFlag"
    assert arg in result.message


def test_a_users_variable_reference_reaches_vllm_as_written(tmp_path: Path) -> None:
    # Run as the kubelet would (tests/unit/kubelet.py): HF_TOKEN resolves to the Secret's value in
    # the container, yet vLLM must receive the user's `$(HF_TOKEN)` as typed, and the group's own
    # $(NODE_RANK) must still expand.
    for scenario in ("fp8-h100", "bf16-h100-multinode"):
        md = _load(
            scenario,
            serving={"extraArgs": ["--chat-template=$(HF_TOKEN)"]},
            model={
                "name": "/models/$(X)",
                "copyOf": "XiaomiMiMo/MiMo-V2-Flash",  # a path: the planner needs the checkpoint it copies
                "tokenSecretRef": {"name": "hf-token", "key": "token"},
            },
        )
        _, children = _render(md)
        for pod in statefulset_pods(_of_kind(children, "StatefulSet")[0]):
            env = container_env(pod, pod["spec"]["containers"][0])
            assert env["HF_TOKEN"] == "hf-token/token"  # the kubelet's stand-in for the secret value
            argv = exec_argv(pod, tmp_path)
            assert argv[1] == "/models/$(X)", scenario
            assert "--chat-template=$(HF_TOKEN)" in argv, scenario
            assert not any("hf-token/token" in word for word in argv), scenario
            if "--node-rank" in argv:
                assert argv[argv.index("--node-rank") + 1] == pod["metadata"]["labels"][POD_INDEX_LABEL]


def test_user_strings_cannot_expand_container_environment() -> None:
    # Kubernetes expands $(VAR) in args from the container env: $(HF_TOKEN) would leak the token.
    md = _load(
        "fp8-h100",
        serving={"extraArgs": ["--chat-template=$(HF_TOKEN)"]},
        model={"name": "/models/$(X)", "copyOf": "XiaomiMiMo/MiMo-V2-Flash"},
    )
    _, children = _render(md)
    args = _container(_of_kind(children, "StatefulSet")[0])["args"]
    assert args[0] == "/models/$$(X)"
    assert args[-1] == "--chat-template=$$(HF_TOKEN)"
    multi = _load("bf16-h100-multinode", serving={"extraArgs": ["--x=$(HF_TOKEN)"]})
    _, groups = _render(multi)
    group_args = _container(_of_kind(groups, "StatefulSet")[0])["args"]
    assert "$(NODE_RANK)" in group_args  # the operator's own reference still expands
    assert group_args[-1] == "--x=$$(HF_TOKEN)"
