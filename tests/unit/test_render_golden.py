"""Whole rendered objects compared with reviewed snapshots in tests/unit/golden/.

A snapshot is written only by `UPDATE_GOLDEN=1 pytest tests/unit/test_render_golden.py` and must be
read before it is committed: it is the reviewer's record of every child a scenario produces.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children

GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = sorted(p.name.removesuffix(".input.yaml") for p in GOLDEN.glob("*.input.yaml"))


def render_scenario(name: str) -> str:
    md = parse_mimo_deployment(yaml.safe_load((GOLDEN / f"{name}.input.yaml").read_text()))
    result = plan_for(md.spec)
    assert isinstance(result, Plan), result
    return yaml.safe_dump_all(render_children(md, result, RenderConfig()), sort_keys=False)


def test_every_required_scenario_has_a_snapshot() -> None:
    assert set(SCENARIOS) >= {
        "fp8-h100",
        "fp8-h200",
        "bf16-h100-multinode",
        "autoscaling",
        "placement-extra-args",
    }


@pytest.mark.parametrize("name", SCENARIOS)
def test_rendered_children_match_snapshot(name: str) -> None:
    rendered = render_scenario(name)
    snapshot = GOLDEN / f"{name}.golden.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        snapshot.write_text(rendered)
    assert snapshot.exists(), f"no snapshot for {name}: run UPDATE_GOLDEN=1 and review it"
    assert rendered == snapshot.read_text(), f"{name} changed: review the diff, then UPDATE_GOLDEN=1"


# ---- What each scenario must render, worked out by hand from its input spec ---------------------
# A snapshot records whatever the renderer wrote when it was last reviewed; these say why. Each value
# comes from the scenario's input file, from a spec default (api/spec.py: cpu "32", memory 512Gi,
# /dev/shm 20Gi, gpuMemoryUtilization 0.9, replicas 1, model XiaomiMiMo/MiMo-V2-Flash), or from a
# documented fact (GPU catalog product labels; fp8 fits TP8 on H100-80GB and TP4 on H200-141GB,
# bf16 needs TP8 x PP2 on H100-80GB: README "Plan a deployment" and examples/).

H100 = "NVIDIA-H100-80GB-HBM3"  # models/gpus.py, as NVIDIA GPU feature discovery labels it
H200 = "NVIDIA-H200"
MODEL = "XiaomiMiMo/MiMo-V2-Flash"
REVISION = "0123456789abcdef0123456789abcdef01234567"
IMAGE = "vllm/vllm-openai:v0.33.0"  # the pinned vLLM release (render/config.py)
# No cache: an emptyDir for one download, the 291.3 GiB fp8 checkpoint (README plan output,
# checkpointGiB) x 1.2 = 349.56 -> 349, + 20 = 369 GiB.
DOWNLOAD_VOLUME = {"emptyDir": {"sizeLimit": "369Gi"}}


@dataclass(frozen=True)
class Expected:
    namespace: str
    statefulsets: dict[str, int]  # name -> pods
    gpus_per_pod: str
    product_label: str
    flags: dict[str, str | None]  # flag -> its value (None: a switch); model is "<model>"
    absent: tuple[str, ...]
    requests: dict[str, str]
    shm: str
    model_volume: dict[str, Any]
    env: dict[str, Any]  # name -> value, or valueFrom
    pdb: bool
    hpa: tuple[int, int] | None = None
    image: str = IMAGE
    extra_args: tuple[str, ...] = ()
    startup_seconds: int | None = None  # only where the spec fixes it; "auto" is test_render_children's
    node_selector: dict[str, str] = field(default_factory=dict)
    priority_class: str | None = None


SWITCHES: dict[str, str | None] = {
    "--trust-remote-code": None,
    "--download-dir": "/models",
    "--host": "0.0.0.0",
    "--port": "8000",
    "--reasoning-parser": "mimo",
    "--enable-auto-tool-choice": None,
    "--tool-call-parser": "mimo",
}
DEFAULT_REQUESTS = {"cpu": "32", "memory": "512Gi"}
SINGLE_NODE_ABSENT = ("--pipeline-parallel-size", "--nnodes", "--node-rank", "--headless", "--api-key")

EXPECTED: dict[str, Expected] = {
    "fp8-h100": Expected(
        namespace="llm",
        statefulsets={"mimo": 2},  # replicas: 2, one node each
        gpus_per_pod="8",
        product_label=H100,
        flags={
            **SWITCHES,
            # A writable weights claim: the download Job fills it, vLLM serves the local copy of the
            # pinned revision (<claim>/<repo with -- for />/<revision>), so no --revision.
            "<model>": f"/models/XiaomiMiMo--MiMo-V2-Flash/{REVISION}",
            "--served-model-name": "mimo-v2-flash",
            "--tensor-parallel-size": "8",
            "--gpu-memory-utilization": "0.9",
        },
        absent=(*SINGLE_NODE_ABSENT, "--kv-cache-dtype", "--default-chat-template-kwargs", "--revision"),
        requests={**DEFAULT_REQUESTS, "nvidia.com/gpu": "8"},
        shm="20Gi",
        model_volume={"persistentVolumeClaim": {"claimName": "mimo-weights", "readOnly": False}},
        env={
            "HF_TOKEN": {"secretKeyRef": {"name": "hf-token", "key": "token"}},
            "VLLM_API_KEY": {"secretKeyRef": {"name": "mimo-api-key", "key": "key"}},
            "HF_HUB_OFFLINE": "1",  # the weights are local: a restart never touches the network
        },
        pdb=True,  # 2 replicas
    ),
    "fp8-h200": Expected(
        namespace="llm",
        statefulsets={"mimo-h200": 1},
        gpus_per_pod="4",
        product_label=H200,
        flags={
            **SWITCHES,
            "<model>": MODEL,
            "--served-model-name": "mimo-h200",  # no servedName: metadata.name
            "--tensor-parallel-size": "4",
            "--max-model-len": "131072",  # context.maxModelLen
            "--kv-cache-dtype": "fp8",
            # fp8 KV on SM 9.0: vLLM's default FlashAttention DiffKV path cannot serve it
            # (README "GPU support"), only the Triton DiffKV backend can.
            "--attention-backend": "TRITON_ATTN_DIFFKV",
            "--default-chat-template-kwargs": '{"enable_thinking":true}',  # thinking.default
        },
        absent=(*SINGLE_NODE_ABSENT, "--revision"),
        requests={**DEFAULT_REQUESTS, "nvidia.com/gpu": "4"},
        shm="20Gi",
        model_volume=DOWNLOAD_VOLUME,
        env={},
        pdb=False,  # one replica: a budget would block drains
    ),
    "bf16-h100-multinode": Expected(
        namespace="llm",
        statefulsets={"mimo-bf16-r0": 2, "mimo-bf16-r1": 2},  # 2 replicas x 2 nodes
        gpus_per_pod="8",
        product_label=H100,
        flags={
            **SWITCHES,
            "<model>": "/models/mimo-v2-flash-bf16",
            "--served-model-name": "mimo-bf16",
            "--tensor-parallel-size": "8",
            "--pipeline-parallel-size": "2",
            "--nnodes": "2",
            "--node-rank": "$(NODE_RANK)",
            "--master-port": "29501",
        },
        absent=("--headless", "--api-key", "--revision", "--kv-cache-dtype"),
        requests={**DEFAULT_REQUESTS, "nvidia.com/gpu": "8"},
        shm="20Gi",
        model_volume={"persistentVolumeClaim": {"claimName": "mimo-bf16-weights", "readOnly": True}},
        env={"NODE_RANK": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
        pdb=True,
    ),
    "dp-ep-multinode": Expected(
        namespace="llm",
        statefulsets={"mimo-wide-r0": 2},  # 1 replica x 2 nodes
        gpus_per_pod="8",
        product_label=H100,
        flags={
            **SWITCHES,
            "<model>": "/models/mimo-v2-flash-bf16",
            "--served-model-name": "mimo-wide",
            # strategy throughput on the two nodes bf16 needs: 4 data parallel ranks of TP4, the experts
            # over all 16 GPUs (README "Plan a deployment": data parallel across nodes), 2 ranks per node.
            "--tensor-parallel-size": "4",
            "--data-parallel-size": "4",
            "--enable-expert-parallel": None,
            "--data-parallel-size-local": "2",
            "--data-parallel-rpc-port": "29550",  # vLLM 0.33.0's default, stated
        },
        # Data parallel ranks find their head by --data-parallel-address, not torch's --nnodes group.
        absent=(
            "--pipeline-parallel-size",
            "--nnodes",
            "--node-rank",
            "--master-addr",
            "--headless",
            "--api-key",
            "--revision",
        ),
        requests={**DEFAULT_REQUESTS, "nvidia.com/gpu": "8"},
        shm="20Gi",
        model_volume={"persistentVolumeClaim": {"claimName": "mimo-bf16-weights", "readOnly": True}},
        env={"NODE_RANK": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}},
        pdb=False,  # one replica: a budget would block drains for good
    ),
    "autoscaling": Expected(
        namespace="llm",
        statefulsets={"mimo-auto": 3},  # replicas 3 lies within [1, 4]
        gpus_per_pod="8",
        product_label=H100,
        flags={
            **SWITCHES,
            "<model>": MODEL,
            "--served-model-name": "mimo-auto",
            "--revision": REVISION,
            "--tensor-parallel-size": "8",
        },
        absent=SINGLE_NODE_ABSENT,
        requests={**DEFAULT_REQUESTS, "nvidia.com/gpu": "8"},
        shm="20Gi",
        model_volume=DOWNLOAD_VOLUME,
        env={},
        pdb=True,
        hpa=(1, 4),
    ),
    "fp8-kv-b200": Expected(
        namespace="llm",
        statefulsets={"mimo-fp8kv-b200": 1},
        # B200: 183,359 MiB = 179.06 GiB x 0.90 = 161.2 GiB usable; fp8 weights 291.3 GiB / TP2 =
        # 145.6 GiB + ~5.4 GiB reserved fits, and TP2 divides the 64 query heads: 2 GPUs.
        gpus_per_pod="2",
        product_label="NVIDIA-B200",
        flags={
            **SWITCHES,
            "<model>": MODEL,
            "--served-model-name": "mimo-fp8kv-b200",
            "--tensor-parallel-size": "2",
            "--max-model-len": "262144",  # context.maxModelLen
            "--kv-cache-dtype": "fp8",
            "--attention-backend": "TRITON_ATTN_DIFFKV",  # fp8 KV on SM 10.0, as on SM 9.0
        },
        absent=(*SINGLE_NODE_ABSENT, "--revision"),
        requests={**DEFAULT_REQUESTS, "nvidia.com/gpu": "2"},
        shm="20Gi",
        model_volume=DOWNLOAD_VOLUME,
        env={},
        pdb=False,
    ),
    "placement-extra-args": Expected(
        namespace="team-a",
        statefulsets={"mimo-placed": 1},
        gpus_per_pod="8",  # parallelism.tensor: 8 on an 8-GPU node
        product_label=H200,
        flags={
            **SWITCHES,
            "<model>": MODEL,
            "--served-model-name": "mimo-placed",
            "--tensor-parallel-size": "8",
            "--gpu-memory-utilization": "0.92",
        },
        absent=SINGLE_NODE_ABSENT,
        requests={"cpu": "48", "memory": "1Ti", "nvidia.com/gpu": "8"},
        shm="32Gi",
        model_volume={"hostPath": {"path": "/mnt/nvme/models", "type": "DirectoryOrCreate"}},
        env={"VLLM_LOGGING_LEVEL": "DEBUG"},
        pdb=False,
        image="registry.example.com/vllm/vllm-openai:v0.33.0-patched",
        extra_args=("--max-num-seqs=256", "--enable-prefix-caching"),
        startup_seconds=3600,
        node_selector={"topology.kubernetes.io/zone": "zone-a"},
        priority_class="llm-serving",
    ),
}

# ---- Values that follow defaults the planner owns (maxModelLen auto, speculativeDecoding.mtp auto) --
# Kept in one place: when a default changes, only this table changes. Today: auto max-model-len stops
# at 131,072 (the public vLLM recipe's stated maximum) where it fits; MTP auto is off (no public vLLM
# run of this model with MTP).
DEFAULT_DEPENDENT: dict[str, dict[str, Any]] = {
    "fp8-h100": {"--max-model-len": "131072", "mtp": False},
    "fp8-h200": {"mtp": False},
    "fp8-kv-b200": {"mtp": False},
    "bf16-h100-multinode": {"--max-model-len": "131072", "mtp": False},
    "dp-ep-multinode": {"--max-model-len": "131072", "mtp": False},
    "autoscaling": {"--max-model-len": "131072", "mtp": False},
    "placement-extra-args": {"--max-model-len": "131072", "mtp": False},
}


def _flags(args: list[str]) -> dict[str, str | None]:
    """`--flag value` / `--switch` pairs of a vllm serve line (model first, extraArgs excluded)."""
    out: dict[str, str | None] = {"<model>": args[0]}
    i = 1
    while i < len(args):
        has_value = i + 1 < len(args) and not args[i + 1].startswith("--")
        out[args[i]] = args[i + 1] if has_value else None
        i += 2 if has_value else 1
    return out


def name_of(scenario: str) -> str:
    body = yaml.safe_load((GOLDEN / f"{scenario}.input.yaml").read_text())
    name: str = body["metadata"]["name"]
    return name


def test_every_scenario_has_hand_written_expectations() -> None:
    assert set(EXPECTED) == set(SCENARIOS) == set(DEFAULT_DEPENDENT)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_renders_what_its_spec_asks_for(name: str) -> None:
    expect = EXPECTED[name]
    children = list(yaml.safe_load_all(render_scenario(name)))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for child in children:
        by_kind.setdefault(child["kind"], []).append(child)
        assert child["metadata"]["namespace"] == expect.namespace
    deployment = name_of(name)
    assert {
        s["metadata"]["name"]: s["spec"]["replicas"] for s in by_kind["StatefulSet"]
    } == expect.statefulsets
    assert sorted(s["metadata"]["name"] for s in by_kind["Service"]) == [deployment, f"{deployment}-pods"]
    assert ("PodDisruptionBudget" in by_kind) == expect.pdb
    if expect.hpa is None:
        assert "HorizontalPodAutoscaler" not in by_kind
    else:
        (hpa,) = by_kind["HorizontalPodAutoscaler"]
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == expect.hpa
    for sts in by_kind["StatefulSet"]:
        pod = sts["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        args = container["args"]
        user_args = len(expect.extra_args)
        assert tuple(args[len(args) - user_args :]) == expect.extra_args  # appended last
        flags = _flags(args[: len(args) - user_args])
        for flag, value in expect.flags.items():
            assert flag in flags and flags[flag] == value, (flag, flags.get(flag))
        for flag in expect.absent:
            assert flag not in flags, flag
        head = flags.get("--master-addr", flags.get("--data-parallel-address"))
        if sts["spec"]["replicas"] > 1 and head is not None:
            assert head == f"{sts['metadata']['name']}-0.{deployment}-pods.{expect.namespace}.svc"
            assert container["command"][:2] == ["/bin/sh", "-c"]
        else:
            assert container["command"] == ["vllm", "serve"]
        assert container["image"] == expect.image
        assert container["resources"] == {"requests": expect.requests, "limits": expect.requests}
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": expect.product_label, **expect.node_selector}
        assert pod.get("priorityClassName") == expect.priority_class
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["dshm"] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": expect.shm}}
        assert volumes["model-cache"] == {"name": "model-cache", **expect.model_volume}
        env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
        for key, value in expect.env.items():
            assert env[key] == value, key
        if expect.startup_seconds is not None:
            assert container["startupProbe"]["failureThreshold"] * 10 == expect.startup_seconds
            assert env["VLLM_ENGINE_READY_TIMEOUT_S"] == str(expect.startup_seconds)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_follows_the_current_defaults(name: str) -> None:
    expect = DEFAULT_DEPENDENT[name]
    children = yaml.safe_load_all(render_scenario(name))
    for sts in (c for c in children if c["kind"] == "StatefulSet"):
        args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
        flags = _flags(args)
        if "--max-model-len" in expect:
            assert flags["--max-model-len"] == expect["--max-model-len"]
        assert ("--speculative-config" in flags) == expect["mtp"]
