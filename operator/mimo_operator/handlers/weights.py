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
from dataclasses import dataclass
from typing import Any, Literal

from mimo_operator.api import MimoDeployment
from mimo_operator.api.status import MimoDeploymentStatus, WeightsStatus
from mimo_operator.fetcher.outcome import FailureKind
from mimo_operator.kube.client import KubeClient
from mimo_operator.kube.resources import KINDS
from mimo_operator.render import RenderConfig
from mimo_operator.render.conditions import set_condition
from mimo_operator.render.weights import FETCHER_CONTAINER, revision_of, weights_location

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

    @property
    def kept_serving(self) -> bool:
        return bool(self.kept)

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
        if self.kept_serving and self.state != "Ready":
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

    @property
    def announces_failure(self) -> bool:
        return self.state == "Failed"


def _condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


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


def pod_missing_for(job: dict[str, Any], now: datetime.datetime) -> float | None:
    """Seconds a running Job has existed without any pod of it counted (active, ready, succeeded,
    failed or terminating); None when it has one, or has ended."""
    status = job.get("status") or {}
    if status.get("conditions") and any(c.get("status") == "True" for c in status["conditions"]):
        return None
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
) -> WeightsGate:
    """What the Job's state means for the deployment (pure; `now` judges a Job that has no pod)."""
    report = report or {}
    weights = WeightsStatus(
        progress=progress_text(report),
        location=weights_location(md, config),
        revision=revision_of(md),
        sha=report.get("sha"),
        bytes_done=report.get("bytesDone"),
        bytes_total=report.get("bytesTotal"),
        bytes_per_second=report.get("bytesPerSecond"),
        job=job_name,
    )
    if live_job is not None and _condition(live_job, "Complete") is not None:
        sha = f" at commit {weights.sha}" if weights.sha else ""
        return WeightsGate(
            "Ready", "Complete", f"{md.spec.model.name}@{weights.revision}{sha} verified", weights
        )
    failed = _condition(live_job, "Failed") if live_job is not None else None
    missing = pod_missing_for(live_job, now) if live_job is not None and now is not None else None
    if failed is None and missing is not None and missing >= POD_CREATION_GRACE_SECONDS:
        return WeightsGate(
            "Downloading",
            "DownloadPodNotCreated",
            f"Job {job_name} has created no pod in {int(missing)} s: the cluster refuses it (a "
            "ResourceQuota, Pod Security admission, or a missing ServiceAccount); `kubectl describe job "
            f"{job_name}` shows the cause, and the download starts once it is fixed",
            weights,
        )
    if failed is None:
        return WeightsGate(
            "Downloading",
            "Downloading",
            f"Job {job_name} is fetching {md.spec.model.name}@{weights.revision}",
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


async def gate_on_weights(
    client: KubeClient,
    md: MimoDeployment,
    config: RenderConfig,
    desired: list[dict[str, Any]],
    live: dict[tuple[str, str, str], dict[str, Any]],
) -> tuple[list[dict[str, Any]], WeightsGate | None]:
    """Desired children with the StatefulSets held back until the weights are complete; None when
    the operator does not fetch this deployment's weights."""
    job = next((obj for obj in desired if obj["kind"] == "Job"), None)
    if job is None:
        return desired, None
    name = job["metadata"]["name"]
    live_job = live.get(("batch/v1", "Job", name))
    report = None
    if live_job is not None and (_condition(live_job, "Complete") or _condition(live_job, "Failed")):
        pods = await client.list(
            KINDS[("v1", "Pod")].collection(md.metadata.namespace), f"{JOB_NAME_LABEL}={name}"
        )
        # Only an ended pod has a termination message: progress while it runs would need pods/log,
        # which the operator is deliberately not granted (logs of every pod in the namespace).
        report = final_report(pods)
    gate = weights_gate(md, config, name, live_job, report, datetime.datetime.now(datetime.UTC))
    if gate.state == "Ready":
        return desired, gate
    if any(key[1] == "StatefulSet" for key in live):
        # Already serving, and the weights the spec now names are not complete (a new revision on its
        # way, or its download failed): the running StatefulSets stay exactly as they are, serving the
        # weights they have; applied now, they would roll onto a directory that is not there yet. A
        # StatefulSet that does not exist yet (a replica added meanwhile) waits for the weights too.
        kept = tuple(key for key in live if key[1] == "StatefulSet")
        others = [obj for obj in desired if obj["kind"] != "StatefulSet"]
        return others, WeightsGate(gate.state, gate.reason, gate.message, gate.weights, kept=kept)
    held = [obj for obj in desired if obj["kind"] != "StatefulSet"]
    return held, WeightsGate(gate.state, gate.reason, gate.message, gate.weights, holding=True)
