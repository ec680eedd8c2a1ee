"""What the download Job's end means for the deployment: WeightsReady, the phase, one sentence."""

import asyncio
import datetime
import json
import socket
from importlib import resources
from typing import Any

import yaml

from mimo_operator.api import MimoDeploymentStatus, parse_mimo_deployment
from mimo_operator.api.status import WeightsStatus
from mimo_operator.fetcher.config_report import encode_config
from mimo_operator.fetcher.progress_server import serve_progress
from mimo_operator.handlers.weights import (
    final_report,
    gate_children,
    progress_text,
    reported_config,
    running_report,
    weights_gate,
)
from mimo_operator.models.checkpoint import planning_config
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from tests.unit.test_render_golden import GOLDEN

NOW = "2026-12-02T15:00:00Z"
SHA = "9ec67986f2ca50b411f1108b842e745f57223a79"


def _md() -> Any:
    body = yaml.safe_load((GOLDEN / "fp8-h200.input.yaml").read_text())
    body["spec"].setdefault("model", {})["cache"] = {"volumeClaimTemplate": {"size": "400Gi"}}
    return parse_mimo_deployment(body)


def _job(condition: str | None, message: str = "") -> dict[str, Any]:
    conditions = [{"type": condition, "status": "True", "message": message}] if condition else []
    return {"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": conditions}}


def _pod(report: dict[str, Any], finished: str) -> dict[str, Any]:
    terminated = {"exitCode": 0, "finishedAt": finished, "message": json.dumps(report)}
    return {"status": {"containerStatuses": [{"name": "fetcher", "state": {"terminated": terminated}}]}}


def test_complete_job_makes_weights_ready_with_the_pinned_commit() -> None:
    md = _md()
    report = {"phase": "Complete", "sha": SHA, "bytesDone": 313, "bytesTotal": 313, "reason": None}
    gate = weights_gate(md, RenderConfig(), "w-1", _job("Complete"), report)

    status = gate.apply(MimoDeploymentStatus(phase="Deploying"), NOW, 1)

    cond = next(c for c in status.conditions if c.type == "WeightsReady")
    assert (cond.status, cond.reason) == ("True", "Complete")
    assert SHA in cond.message
    assert status.weights is not None and status.weights.sha == SHA
    assert status.weights.location == f"pvc/{md.metadata.name}-weights:/models/XiaomiMiMo--MiMo-V2-Flash/main"
    assert status.phase == "Deploying"


def test_running_job_shows_downloading_while_the_statefulsets_are_held() -> None:
    gate = weights_gate(_md(), RenderConfig(), "w-1", _job(None), None)
    held = type(gate)(gate.state, gate.reason, gate.message, gate.weights, holding=True)

    status = held.apply(MimoDeploymentStatus(phase="Deploying"), NOW, 1)

    assert status.phase == "Downloading"
    cond = next(c for c in status.conditions if c.type == "WeightsReady")
    assert (cond.status, cond.reason) == ("False", "Downloading")
    assert not gate.announces_failure


def test_failure_carries_the_fetchers_own_sentence() -> None:
    sentence = "the Hub did not accept the token (401): invalid or revoked"
    report = {"phase": "Failed", "reason": "Unauthorized", "message": sentence}
    gate = weights_gate(_md(), RenderConfig(), "w-1", _job("Failed", "matching FailJob rule"), report)
    held = type(gate)(gate.state, gate.reason, gate.message, gate.weights, holding=True)

    status = held.apply(MimoDeploymentStatus(), NOW, 1)

    assert status.phase == "Failed"
    cond = next(c for c in status.conditions if c.type == "WeightsReady")
    assert (cond.status, cond.reason, cond.message) == (
        "False",
        "Unauthorized",
        f"weights download failed: {sentence}",
    )
    assert gate.announces_failure


def test_failure_without_a_pod_left_is_read_from_the_exit_code() -> None:
    job_message = (
        "Container fetcher for pod llm/w-1-x failed with exit code 12 matching FailJob rule at index 0"
    )
    gate = weights_gate(_md(), RenderConfig(), "w-1", _job("Failed", job_message), None)
    assert gate.reason == "DiskTooSmall"
    assert job_message in gate.message


def test_the_newest_pods_report_wins() -> None:
    pods = [
        _pod({"phase": "Failed", "reason": "Stalled"}, "2026-12-02T14:00:00Z"),
        _pod({"phase": "Complete", "sha": SHA}, "2026-12-02T14:30:00Z"),
    ]
    report = final_report(pods)
    assert report is not None and report["phase"] == "Complete"


def test_progress_reads_as_percent_and_time_left() -> None:
    gib = 1024**3
    assert progress_text(
        {"bytesDone": 132 * gib, "bytesTotal": 313 * gib, "etaSeconds": 2 * 3600 + 5 * 60}
    ) == ("42% ETA 2h05m")
    assert progress_text({"bytesDone": 300 * gib, "bytesTotal": 313 * gib, "etaSeconds": 90}) == "95% ETA 1m"
    assert progress_text({"bytesDone": 313 * gib, "bytesTotal": 313 * gib, "etaSeconds": None}) == "100%"
    assert progress_text({"phase": "Resolving", "bytesDone": 0, "bytesTotal": 0}) is None


def test_a_fetchers_report_reaches_the_status_as_progress() -> None:
    report = {
        "phase": "Downloading",
        "bytesDone": 50,
        "bytesTotal": 200,
        "bytesPerSecond": 10,
        "etaSeconds": 15,
    }
    gate = weights_gate(_md(), RenderConfig(), "w-1", _job(None), report)
    assert gate.state == "Downloading"
    assert gate.weights.progress == "25% ETA 1m"
    assert gate.weights.bytes_per_second == 10


def _running(created: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"creationTimestamp": created},
        "status": status,
    }


def test_a_job_that_created_no_pod_for_a_minute_says_the_cluster_refuses_it() -> None:
    now = datetime.datetime(2026, 12, 2, 15, 0, 0, tzinfo=datetime.UTC)
    refused = weights_gate(_md(), RenderConfig(), "w-1", _running("2026-12-02T14:58:30Z"), None, now)
    cond = next(
        c for c in refused.apply(MimoDeploymentStatus(), NOW, 1).conditions if c.type == "WeightsReady"
    )
    assert (cond.status, cond.reason) == ("False", "DownloadPodNotCreated")
    assert "no pod in 90 s" in cond.message and "kubectl describe job w-1" in cond.message
    assert refused.state == "Downloading" and not refused.announces_failure  # the Job keeps trying
    # Within the first minute, or with a pod of it counted (even one that failed), it is downloading.
    for job in (
        _running("2026-12-02T14:59:30Z"),
        _running("2026-12-02T14:50:00Z", active=1),
        _running("2026-12-02T14:50:00Z", failed=1),
        _running("2026-12-02T14:50:00Z", uncountedTerminatedPods={"failed": ["uid"]}),
    ):
        assert weights_gate(_md(), RenderConfig(), "w-1", job, None, now).reason == "Downloading", job


# --- spec.model.configFrom: checkpoint ------------------------------------------------------------


def _fine_tune_md() -> Any:
    body = yaml.safe_load((GOLDEN / "fp8-h200.input.yaml").read_text())
    body["spec"]["model"] = {
        "name": "acme/v25-sft",
        "configFrom": "checkpoint",
        "cache": {"volumeClaimTemplate": {"size": "400Gi"}},
    }
    return parse_mimo_deployment(body)


def _published(name: str) -> dict[str, Any]:
    text = resources.files("mimo_operator.models").joinpath("checkpoints", name).read_text()
    config: dict[str, Any] = json.loads(text)
    return config


def test_the_config_the_job_reported_is_what_the_planner_reads() -> None:
    config = _published("mimo-v2.5.config.json")
    report = {"phase": "Complete", "sha": SHA, "config": encode_config(config)}

    text = reported_config("w-1", report, None)

    assert text is not None and json.loads(text) == planning_config(config)
    gate = weights_gate(_fine_tune_md(), RenderConfig(), "w-1", _job("Complete"), report, None, text)
    status = gate.apply(MimoDeploymentStatus(), NOW, 1)
    assert gate.state == "Ready"
    assert status.weights is not None and status.weights.config == text


def test_the_status_keeps_the_config_once_the_jobs_pods_are_gone() -> None:
    kept = WeightsStatus(
        location="pvc/w:/models/x", revision="main", job="w-1", config='{"num_hidden_layers":48}'
    )
    assert reported_config("w-1", None, kept) == '{"num_hidden_layers":48}'
    # A config read for another Job (another revision) is not this one's.
    assert reported_config("w-2", None, kept) is None
    # A report that is not an encoded config is not a config.
    assert reported_config("w-1", {"config": "not base64 gzip"}, None) is None


def test_a_download_that_reported_no_config_fails_with_the_way_out() -> None:
    report = {"phase": "Complete", "sha": SHA}
    gate = weights_gate(_fine_tune_md(), RenderConfig(), "w-1", _job("Complete"), report, None, None)

    assert (gate.state, gate.reason) == ("Failed", "ModelConfigNotReported")
    assert "spec.model.config" in gate.message and "w-1" in gate.message
    assert gate.announces_failure


def test_a_named_model_does_not_carry_a_config_in_its_status() -> None:
    report = {"phase": "Complete", "sha": SHA, "config": encode_config(_published("mimo-v2.5.config.json"))}
    gate = weights_gate(_md(), RenderConfig(), "w-1", _job("Complete"), report, None, "{}")
    assert gate.state == "Ready" and gate.weights.config is None


def test_while_weights_download_running_statefulsets_are_kept_and_none_is_created() -> None:
    gate = weights_gate(_fine_tune_md(), RenderConfig(), "w-2", _job(None), None)
    serving = {("apps/v1", "StatefulSet", "sft-0"): {}, ("v1", "Service", "sft"): {}}

    kept = gate.holding_back(serving)
    assert kept.kept == (("apps/v1", "StatefulSet", "sft-0"),) and not kept.holding
    status = kept.apply(MimoDeploymentStatus(phase="Ready"), NOW, 2)
    assert status.phase == "Ready"
    assert next(c for c in status.conditions if c.type == "Progressing").reason == "WaitingForWeights"

    fresh = gate.holding_back({("v1", "Service", "sft"): {}})
    assert fresh.kept == () and fresh.holding
    assert fresh.apply(MimoDeploymentStatus(phase="Pending"), NOW, 1).phase == "Downloading"


def _shared_md() -> Any:
    body = yaml.safe_load((GOLDEN / "fp8-h200.input.yaml").read_text())
    body["metadata"]["name"] = "chat-b"
    body["spec"].setdefault("model", {})["cache"] = {"persistentVolumeClaim": {"claimName": "team-weights"}}
    return parse_mimo_deployment(body)


def _owned_by(job: dict[str, Any], name: str) -> dict[str, Any]:
    ref = {"apiVersion": "serving.mimo.dev/v1alpha1", "kind": "MimoDeployment", "name": name, "uid": "u"}
    return {
        **job,
        "metadata": {"name": "team-weights-fetch-1", "ownerReferences": [{**ref, "controller": True}]},
    }


def test_another_deployments_download_is_waited_for_and_never_applied_again() -> None:
    md = _shared_md()
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    desired = render_children(md, plan, RenderConfig())
    running = _owned_by(_job(None), "chat-a")

    children, gate = gate_children(md, RenderConfig(), desired, {}, None, shared=running)

    assert gate is not None and gate.state == "Downloading" and gate.holding
    assert "MimoDeployment chat-a's" in gate.message
    kinds = [obj["kind"] for obj in children]
    assert "Job" not in kinds and "StatefulSet" not in kinds  # chat-a's Job does the work

    report = {"phase": "Complete", "sha": SHA, "bytesDone": 313, "bytesTotal": 313}
    children, gate = gate_children(
        md, RenderConfig(), desired, {}, report, shared=_owned_by(_job("Complete"), "chat-a")
    )
    assert gate is not None and gate.state == "Ready" and gate.weights.sha == SHA
    assert "verified by Job" in gate.message and "chat-a" in gate.message
    kinds = [obj["kind"] for obj in children]
    assert "Job" not in kinds and "StatefulSet" in kinds


def _fetcher_pod(ip: str, port: int, phase: str = "Running") -> dict[str, Any]:
    ports = [{"name": "progress", "containerPort": port}]
    return {
        "spec": {"containers": [{"name": "fetcher", "ports": ports}]},
        "status": {"phase": phase, "podIP": ip},
    }


def test_a_running_download_shows_percent_and_eta_from_the_fetchers_own_server() -> None:
    # The fetcher's real progress server, answering what its reporter last logged.
    latest = {"phase": "Downloading", "sha": SHA, "bytesDone": 37, "bytesTotal": 100, "etaSeconds": 720}
    server = serve_progress(lambda: latest, 0, host="127.0.0.1")
    try:
        port = server.server_address[1]
        report = asyncio.run(
            running_report([_fetcher_pod("10.9.9.9", port, "Pending"), _fetcher_pod("127.0.0.1", port)])
        )
    finally:
        server.shutdown()
        server.server_close()
    assert report == latest
    gate = weights_gate(_md(), RenderConfig(), "w-1", _job(None), report)
    status = gate.holding_back({}).apply(MimoDeploymentStatus(), NOW, 1)
    assert status.phase == "Downloading"
    assert status.weights is not None and status.weights.progress == "37% ETA 12m"
    assert (status.weights.bytes_done, status.weights.bytes_total, status.weights.sha) == (37, 100, SHA)


def test_a_download_pod_that_does_not_answer_leaves_the_percent_out() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens once the socket is closed
    assert asyncio.run(running_report([_fetcher_pod("127.0.0.1", closed)])) is None
    gate = weights_gate(_md(), RenderConfig(), "w-1", _job(None), None)
    assert gate.state == "Downloading" and gate.weights.progress is None
