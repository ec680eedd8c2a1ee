"""Gating on the weights: no vLLM StatefulSet is created before its weights are complete.

The download Job (render/weights.py) is a child like any other; this module reads how it ended and
holds the StatefulSets back until it completed. What the fetcher says when it ends (reason, commit,
bytes) comes from its pod's termination message, which the operator already may read (it lists
pods); the fetcher itself holds no credentials. A failure ends the Job at once for the classes that
retrying cannot fix (the Job's podFailurePolicy) and shows here as WeightsReady=False with the
fetcher's own sentence, never as a crash loop of vLLM pods.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from mimo_operator.api import MimoDeployment, constants
from mimo_operator.api.status import MimoDeploymentStatus, WeightsStatus
from mimo_operator.fetcher.config_report import decode_config
from mimo_operator.fetcher.outcome import FailureKind
from mimo_operator.fetcher.progress_server import PROGRESS_PATH
from mimo_operator.kube.cache import ChildKey, child_key
from mimo_operator.kube.children import Owner
from mimo_operator.kube.client import KubeClient
from mimo_operator.kube.podhttp import pod_json
from mimo_operator.kube.resources import KINDS
from mimo_operator.models.checkpoint import planning_config
from mimo_operator.render import RenderConfig
from mimo_operator.render.conditions import set_condition
from mimo_operator.render.weights import (
    FETCHER_CONTAINER,
    FETCHER_PROGRESS_PORT_NAME,
    revision_of,
    shares_download,
    weights_location,
)

# Set by the Job controller on its pods since Kubernetes 1.27 (KEP-3329 era label cleanup).
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
# The Job controller's message for a FailJob rule: "Container fetcher for pod ns/x failed with exit
# code 12 matching FailJob rule at index 0" (pkg/controller/job, podFailurePolicy).
_EXIT_CODE = re.compile(r"exit code (\d+)")

State = Literal["Ready", "Downloading", "Failed"]

# How long a download Job may exist without any pod before the deployment says why it waits. The Job
# controller creates its pod within seconds; one it cannot create (a ResourceQuota, Pod Security
# admission, a missing ServiceAccount) it retries quietly, which the status would otherwise show as an
# endless "Downloading". Also how often such a deployment is looked at again.
POD_CREATION_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class WeightsGate:
    state: State
    reason: str
    message: str
    weights: WeightsStatus
    holding: bool = False
    """The StatefulSets were left out of this reconcile's desired children."""
    kept: tuple[tuple[str, str, str], ...] = ()
    """Running StatefulSets to keep exactly as they are (serving the weights they have) rather than
    roll onto weights that are not complete: neither applied nor pruned by this reconcile."""

    def apply(self, status: MimoDeploymentStatus, now: str, generation: int | None) -> MimoDeploymentStatus:
        """The status with the weights, the WeightsReady condition, and the phase while held back."""
        conditions = set_condition(
            status.conditions,
            "WeightsReady",
            self.state == "Ready",
            self.reason,
            self.message,
            now,
            generation,
        )
        if self.kept and self.state != "Ready":
            conditions = set_condition(
                conditions,
                "Progressing",
                True,
                "WaitingForWeights",
                f"the running pods keep serving the weights they have; {self.message.rstrip('.')}; "
                "they roll over once it is complete",
                now,
                generation,
            )
        update: dict[str, Any] = {"weights": self.weights, "conditions": conditions}
        if self.holding:
            update["phase"] = "Failed" if self.state == "Failed" else "Downloading"
        return status.model_copy(update=update)

    def holding_back(self, live: dict[tuple[str, str, str], dict[str, Any]]) -> WeightsGate:
        """This gate with the StatefulSets held back: the running ones kept exactly as they are
        (serving the weights they have; applied now, they would roll onto a directory that is not
        there yet), or, with none running, none created. A StatefulSet that does not exist yet (a
        replica added meanwhile) waits for the weights too."""
        kept = tuple(key for key in live if key[1] == "StatefulSet")
        return replace(self, kept=kept, holding=not kept)

    @property
    def announces_failure(self) -> bool:
        return self.state == "Failed"


def _condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def job_ended(job: dict[str, Any]) -> bool:
    return _condition(job, "Complete") is not None or _condition(job, "Failed") is not None


def final_report(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fetcher's last JSON line from the newest of the Job's pods that ended, if any."""
    reports = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if status.get("name") != FETCHER_CONTAINER or not terminated.get("message"):
                continue
            try:
                report = json.loads(terminated["message"])
            except ValueError:
                continue
            if isinstance(report, dict):
                reports.append((str(terminated.get("finishedAt", "")), report))
    return max(reports, key=lambda item: item[0])[1] if reports else None


def progress_text(report: dict[str, Any]) -> str | None:
    """ "42% ETA 12m" from a fetcher report; "100%" when complete; None before any number."""
    done, total = report.get("bytesDone"), report.get("bytesTotal")
    if not isinstance(done, int) or not isinstance(total, int) or total <= 0:
        return None
    text = f"{min(100, done * 100 // total)}%"
    eta = report.get("etaSeconds")
    if isinstance(eta, int) and done < total:
        text += f" ETA {eta // 3600}h{eta % 3600 // 60:02d}m" if eta >= 3600 else f" ETA {max(1, eta // 60)}m"
    return text


def reported_config(
    job_name: str, report: dict[str, Any] | None, previous: WeightsStatus | None
) -> str | None:
    """What the planner reads of the checkpoint's config.json (spec.model.configFrom: checkpoint), as
    JSON text: from the download Job's report, or as the status kept it for the same Job (the Job's
    pods, and their termination messages, may be gone by now). None before the Job reported one."""
    encoded = (report or {}).get("config")
    if isinstance(encoded, str):
        try:
            return json.dumps(planning_config(decode_config(encoded)), separators=(",", ":"), sort_keys=True)
        except ValueError:
            return None
    if previous is not None and previous.job == job_name:
        return previous.config
    return None


def pod_missing_for(job: dict[str, Any], now: datetime.datetime) -> float | None:
    """Seconds a running Job has existed without any pod of it counted (active, ready, succeeded,
    failed or terminating); None when it has one, or has ended."""
    if job_ended(job):
        return None
    status = job.get("status") or {}
    counted = ("active", "ready", "succeeded", "failed", "terminating")
    if any(status.get(key) for key in counted) or (status.get("uncountedTerminatedPods") or {}):
        return None
    created = (job.get("metadata") or {}).get("creationTimestamp")
    if not created:
        return None
    since = datetime.datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    return (now - since).total_seconds()


def weights_gate(
    md: MimoDeployment,
    config: RenderConfig,
    job_name: str,
    live_job: dict[str, Any] | None,
    report: dict[str, Any] | None,
    now: datetime.datetime | None = None,
    checkpoint_config: str | None = None,
    shared_by: str | None = None,
) -> WeightsGate:
    """What the Job's state means for the deployment (pure; `now` judges a Job that has no pod;
    `checkpoint_config` is what reported_config found, for spec.model.configFrom: checkpoint;
    `shared_by` names the MimoDeployment whose Job this is, when it is another one's)."""
    report = report or {}
    job_text = f"Job {job_name}" + (
        f" (MimoDeployment {shared_by}'s, same claim and revision)" if shared_by else ""
    )
    from_checkpoint = md.spec.model.config_from == "checkpoint"
    weights = WeightsStatus(
        progress=progress_text(report),
        location=weights_location(md, config),
        revision=revision_of(md),
        sha=report.get("sha"),
        bytes_done=report.get("bytesDone"),
        bytes_total=report.get("bytesTotal"),
        bytes_per_second=report.get("bytesPerSecond"),
        job=job_name,
        config=checkpoint_config if from_checkpoint else None,
    )
    complete = live_job is not None and _condition(live_job, "Complete") is not None
    if complete and from_checkpoint and checkpoint_config is None:
        return WeightsGate(
            "Failed",
            "ModelConfigNotReported",
            f"{job_text} downloaded {md.spec.model.name}@{weights.revision} but reported no "
            "config.json to plan from (the repository has none at this revision, or the fetcher image "
            "predates spec.model.configFrom): give the config in spec.model.config instead",
            weights,
        )
    if complete:
        sha = f" at commit {weights.sha}" if weights.sha else ""
        return WeightsGate(
            "Ready",
            "Complete",
            f"{md.spec.model.name}@{weights.revision}{sha} verified"
            + (f" by {job_text}" if shared_by else ""),
            weights,
        )
    failed = _condition(live_job, "Failed") if live_job is not None else None
    missing = pod_missing_for(live_job, now) if live_job is not None and now is not None else None
    if failed is None and missing is not None and missing >= POD_CREATION_GRACE_SECONDS:
        return WeightsGate(
            "Downloading",
            "DownloadPodNotCreated",
            f"{job_text} has created no pod in {int(missing)} s: the cluster refuses it (a "
            "ResourceQuota, Pod Security admission, or a missing ServiceAccount); `kubectl describe job "
            f"{job_name}` shows the cause, and the download starts once it is fixed",
            weights,
        )
    if failed is None:
        return WeightsGate(
            "Downloading",
            "Downloading",
            f"{job_text} is fetching {md.spec.model.name}@{weights.revision}",
            weights,
        )
    kind = None
    if report.get("reason"):
        kind = next((k for k in FailureKind if k.reason == report["reason"]), None)
    if kind is None and (match := _EXIT_CODE.search(str(failed.get("message", "")))):
        kind = FailureKind.from_exit_code(int(match[1]))
    reason = kind.reason if kind is not None else str(failed.get("reason") or "DownloadFailed")
    detail = report.get("message") or failed.get("message") or "the download Job failed"
    return WeightsGate("Failed", reason, f"weights download failed: {detail}", weights)


ProgressReader = Callable[[str, int, str], Awaitable[dict[str, Any] | None]]


def _progress_port(pod: dict[str, Any]) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") != FETCHER_CONTAINER:
            continue
        for port in container.get("ports") or []:
            if port.get("name") == FETCHER_PROGRESS_PORT_NAME:
                return int(port["containerPort"])
    return None


async def running_report(
    pods: list[dict[str, Any]], read: ProgressReader = pod_json
) -> dict[str, Any] | None:
    """The latest report of the Job's running pod, asked over HTTP (fetcher/progress_server.py);
    None when no pod runs or it does not answer (the status then shows no percent, nothing fails)."""
    for pod in pods:
        status = pod.get("status") or {}
        port = _progress_port(pod)
        if status.get("phase") != "Running" or not status.get("podIP") or port is None:
            continue
        report = await read(str(status["podIP"]), port, PROGRESS_PATH)
        if report is not None:
            return report
    return None


async def job_report(
    client: KubeClient,
    namespace: str,
    job_name: str,
    live_job: dict[str, Any] | None,
    read: ProgressReader = pod_json,
) -> dict[str, Any] | None:
    """The fetcher's final report once its Job ended (from the pod's termination message), or its
    latest one while a pod of it runs (over HTTP: `pods/log` would be the other way, and the operator
    is deliberately not granted the logs of every pod in the namespace); None before either."""
    if live_job is None:
        return None
    ended = job_ended(live_job)
    if not ended and not (live_job.get("status") or {}).get("active"):
        return None  # no pod yet: nothing to list
    pods = await client.list(KINDS[("v1", "Pod")].collection(namespace), f"{JOB_NAME_LABEL}={job_name}")
    return final_report(pods) if ended else await running_report(pods, read)


def controller_name(obj: dict[str, Any]) -> str | None:
    """The MimoDeployment that controls `obj`, by name, or None."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == constants.KIND:
            return str(ref.get("name"))
    return None


async def shared_job(
    client: KubeClient,
    md: MimoDeployment,
    owner: Owner,
    job: dict[str, Any],
    live: dict[ChildKey, dict[str, Any]],
) -> dict[str, Any] | None:
    """Another MimoDeployment's download Job of the very same weights (render/weights.py names such
    a Job after its claim and content): this deployment waits for it and reads its report instead of
    starting a second fetcher into the same directory. None when the Job is this deployment's own,
    does not exist, or belongs to a deleted deployment of this name (the garbage collector's)."""
    if not shares_download(md) or child_key(job) in live:
        return None
    found = await client.get(KINDS[("batch/v1", "Job")].item(owner.namespace, job["metadata"]["name"]))
    if found is None:
        return None
    controller = controller_name(found)
    if controller is None or controller == owner.name:
        return None
    return found


def shared_download(md: MimoDeployment, desired: list[dict[str, Any]]) -> frozenset[ChildKey]:
    """The desired download Job when its name is its content (render/weights.py shares_download):
    two deployments of the same weights may race to create it, and either may then control it."""
    if not shares_download(md):
        return frozenset()
    return frozenset(child_key(obj) for obj in desired if obj["kind"] == "Job")


def without_job(desired: list[dict[str, Any]], shared: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The desired children, less the download Job when another deployment's Job does the work."""
    return desired if shared is None else [obj for obj in desired if obj["kind"] != "Job"]


def gate_children(
    md: MimoDeployment,
    config: RenderConfig,
    desired: list[dict[str, Any]],
    live: dict[tuple[str, str, str], dict[str, Any]],
    report: dict[str, Any] | None,
    checkpoint_config: str | None = None,
    shared: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], WeightsGate | None]:
    """Desired children with the StatefulSets held back until the weights are complete; None when
    the operator does not fetch this deployment's weights. `report` is job_report's; `shared` is
    shared_job's (then the Job is not applied, only waited for)."""
    job = next((obj for obj in desired if obj["kind"] == "Job"), None)
    if job is None:
        return desired, None
    name = job["metadata"]["name"]
    live_job = shared if shared is not None else live.get(("batch/v1", "Job", name))
    now = datetime.datetime.now(datetime.UTC)
    shared_by = controller_name(shared) if shared is not None else None
    gate = weights_gate(md, config, name, live_job, report, now, checkpoint_config, shared_by)
    desired = without_job(desired, shared)
    if gate.state == "Ready":
        return desired, gate
    others = [obj for obj in desired if obj["kind"] != "StatefulSet"]
    return others, gate.holding_back(live)
