"""The cold-start estimate: a person can tell before applying whether the first start takes ten
minutes or hours, and what a restart costs after it (issue 14 item 6)."""

import json
from typing import Any

import pytest

from mimo_operator.cli import main
from mimo_operator.planner import Plan
from mimo_operator.planner.coldstart import cold_start
from mimo_operator.render import RenderConfig
from mimo_operator.render.probes import cold_start_for, probes
from mimo_operator.render.status import plan_status
from tests.unit.test_family import PRO, PRO_INDEX_BYTES, _md, _plan

MIB = 2**20
CLAIM = {"persistentVolumeClaim": {"claimName": "weights"}}


def _planned(spec: dict[str, Any]) -> Plan:
    plan = _plan(spec)
    assert isinstance(plan, Plan), plan
    return plan


def test_the_download_term_is_the_published_checkpoint_size_at_the_stated_rate() -> None:
    # MiMo-V2.5-Pro fp8 on H200: the size comes from the model profile, checked here against the
    # model.safetensors.index.json total of the pinned revision.
    spec = {"model": {"name": PRO, "cache": CLAIM, "downloadRateMiBps": 250}, "gpu": {"type": "H200-141GB"}}
    md = _md(spec)
    cold = cold_start_for(md, _planned(spec), RenderConfig())
    assert cold.fetched_by == "job"
    assert cold.download_seconds == pytest.approx(PRO_INDEX_BYTES / (250 * MIB), rel=0.01)
    # An hour or more of download before a terabyte model can load: the plan says so up front.
    assert cold.download_seconds > 3600
    assert "250 MiB/s" in cold.summary


def test_first_start_adds_up_and_a_new_pod_reads_the_cache() -> None:
    spec = {"model": {"cache": CLAIM}, "gpu": {"type": "H100-80GB"}}
    md, plan = _md(spec), _planned(spec)
    cold = cold_start_for(md, plan, RenderConfig(engine_init_seconds=300))
    assert cold.first_start_seconds == cold.download_seconds + cold.load_seconds + 300
    assert cold.new_pod_seconds == cold.load_seconds + 300  # the Job filled the claim once
    # The startup probe's budget covers exactly the load and the engine start (to its 10 s period).
    startup = probes(md, plan, RenderConfig(engine_init_seconds=300), None)["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert cold.new_pod_seconds <= budget < cold.new_pod_seconds + startup["periodSeconds"]


def test_an_empty_dir_downloads_on_every_start_and_a_host_path_once() -> None:
    gpu = {"type": "H200-141GB"}
    plan = _planned({"gpu": gpu})
    every = cold_start_for(_md({"gpu": gpu}), plan, RenderConfig())
    assert every.fetched_by == "vllm"
    assert every.new_pod_seconds == every.first_start_seconds
    assert "downloading again" in every.summary
    host = cold_start_for(
        _md({"gpu": gpu, "model": {"cache": {"hostPath": {"path": "/nvme"}}}}), plan, RenderConfig()
    )
    assert host.fetched_by == "vllm"
    assert host.new_pod_seconds == host.first_start_seconds - host.download_seconds


def test_weights_already_in_place_download_nothing() -> None:
    spec = {"model": {"cache": {"persistentVolumeClaim": {"claimName": "w", "readOnly": True}}}}
    cold = cold_start_for(_md(spec), _planned(spec), RenderConfig())
    assert (cold.fetched_by, cold.download_gib, cold.download_seconds) == ("none", 0.0, 0)
    assert cold.first_start_seconds == cold.new_pod_seconds


def test_a_pod_of_a_multi_node_replica_loads_only_its_stage() -> None:
    one_node = _planned({"precision": "fp8", "gpu": {"type": "H100-80GB"}})
    two_nodes = _planned({"precision": "fp8", "gpu": {"type": "H100-80GB"}, "parallelism": {"pipeline": 2}})
    assert two_nodes.nodes_per_replica == 2
    single, split = cold_start(one_node, "job"), cold_start(two_nodes, "job")
    assert split.download_seconds == single.download_seconds  # the whole checkpoint, once
    assert split.load_seconds == pytest.approx(single.load_seconds / 2, rel=0.1)


def test_a_faster_link_shortens_only_the_download() -> None:
    plan = _planned({})
    slow, fast = (
        cold_start(plan, "job", download_rate_mib_per_s=100),
        cold_start(plan, "job", download_rate_mib_per_s=400),
    )
    assert fast.download_seconds == pytest.approx(slow.download_seconds / 4, abs=1)
    assert (fast.load_seconds, fast.engine_start_seconds) == (slow.load_seconds, slow.engine_start_seconds)


def test_status_plan_carries_the_estimate() -> None:
    spec = {"model": {"cache": CLAIM}}
    md, plan = _md(spec), _planned(spec)
    status = plan_status(plan, "abc", cold_start_for(md, plan, RenderConfig())).model_dump(by_alias=True)
    cold = status["coldStart"]
    assert cold["fetchedBy"] == "job"
    assert (
        cold["firstStartSeconds"]
        == cold["downloadSeconds"] + cold["loadSeconds"] + cold["engineStartSeconds"]
    )
    assert cold["summary"].startswith("first start ~")


def test_the_cli_plan_prints_the_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--gpu", "H200-141GB", "-o", "json", "--download-rate-mibps", "50"]) == 0
    job = json.loads(capsys.readouterr().out)["coldStart"]
    assert main(["plan", "--gpu", "H200-141GB", "-o", "json", "--fetch", "vllm"]) == 0
    vllm = json.loads(capsys.readouterr().out)["coldStart"]
    assert job["downloadRateMiBps"] == 50 and vllm["downloadRateMiBps"] == 100
    assert job["downloadSeconds"] == pytest.approx(2 * vllm["downloadSeconds"], abs=2)
    assert job["newPodSeconds"] < vllm["newPodSeconds"]  # vLLM in an emptyDir downloads again
    assert main(["plan", "--gpu", "H200-141GB", "--fetch", "none"]) == 0
    table = capsys.readouterr().out
    assert "coldStart" in table and "weights in place, no download" in table
