"""The weights cache as Kubernetes objects (pure): the claim, the download Job, and what the vLLM
container needs to read the weights from it offline.

Why a Job and not vLLM: a download inside `vllm serve` runs inside the startup probe's window, in
every pod, on every restart, and a wrong token shows up as a crash loop. The Job runs the fetcher
(`mimo_operator.fetcher`) once per (repository, revision) into `<mount>/<org>--<name>/<revision>`;
the vLLM StatefulSets are created only after it completed (handlers/weights.py), and vLLM then
serves that directory with HF_HUB_OFFLINE=1, so no restart, reschedule or scale-up touches the network.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mimo_operator.api import MimoDeployment, constants
from mimo_operator.api.spec import FetchMode
from mimo_operator.fetcher.outcome import FailureKind
from mimo_operator.render import names
from mimo_operator.render.config import RenderConfig
from mimo_operator.render.security import SECCOMP, hardened_container_context

FETCHER_CONTAINER = "fetcher"
# The fetcher answers GET /progress here while it runs (fetcher/progress_server.py); the operator
# reads it by pod IP for percent and ETA. Any free port of the pod would do: nothing else runs in it.
FETCHER_PROGRESS_PORT = 8090
FETCHER_PROGRESS_PORT_NAME = "progress"
WEIGHTS_VOLUME = "model-cache"
# The fetcher ends with these codes when retrying cannot help (token, 404, disk, checksum); a stall
# or a network error (14, 15) may pass on a new pod, so the Job retries those within backoffLimit.
PERMANENT_FAILURES = (
    FailureKind.UNAUTHORIZED,
    FailureKind.NOT_FOUND,
    FailureKind.DISK_TOO_SMALL,
    FailureKind.CHECKSUM_MISMATCH,
)
FETCH_RETRIES = 3
IMAGE_UID = 65532


def fetch_mode(md: MimoDeployment) -> FetchMode:
    cache = md.spec.model.cache
    return "vllm" if cache is None else cache.fetch_mode()


def revision_of(md: MimoDeployment) -> str:
    return md.spec.model.revision or "main"


def weights_dir(md: MimoDeployment, config: RenderConfig) -> str:
    """Where one (repository, revision) lives in the cache volume, as the pods mount it."""
    repo_dir = md.spec.model.name.strip("/").replace("/", "--")
    return f"{config.model_mount_path}/{repo_dir}/{revision_of(md)}"


def cache_claim_name(md: MimoDeployment) -> str | None:
    """The claim holding the weights: the user's, the operator's, or None (hostPath, emptyDir)."""
    cache = md.spec.model.cache
    if cache is None:
        return None
    if cache.persistent_volume_claim is not None:
        return cache.persistent_volume_claim.claim_name
    if cache.volume_claim_template is not None:
        return f"{md.metadata.name}-weights"
    return None


def vllm_model_arg(md: MimoDeployment, config: RenderConfig) -> str:
    """What `vllm serve` is given as the model: the local copy when the operator fetched it."""
    return weights_dir(md, config) if fetch_mode(md) == "job" else md.spec.model.name


def vllm_offline_env(md: MimoDeployment) -> list[dict[str, Any]]:
    """With the weights fetched ahead, vLLM must never reach out to the Hub (huggingface_hub's
    HF_HUB_OFFLINE, constants.py there): a restart then cannot start a second download."""
    if fetch_mode(md) != "job":
        return []
    return [{"name": "HF_HUB_OFFLINE", "value": "1"}]


def weights_location(md: MimoDeployment, config: RenderConfig) -> str:
    """For status: the claim and directory holding this deployment's weights (for a node-local
    cache: the node directory, on the nodes labelled as holding a complete copy)."""
    if node_local(md):
        cache = md.spec.model.cache
        assert cache is not None and cache.host_path is not None
        inside = weights_dir(md, config).removeprefix(config.model_mount_path)
        return f"hostPath:{cache.host_path.path.rstrip('/')}{inside} on nodes labelled {node_copy_label(md)}"
    return f"pvc/{cache_claim_name(md)}:{weights_dir(md, config)}"


def node_local(md: MimoDeployment) -> bool:
    """A copy of the weights on each node (hostPath), filled by one download Job per node."""
    cache = md.spec.model.cache
    return cache is not None and cache.host_path is not None and fetch_mode(md) == "job"


def node_copy_label(md: MimoDeployment) -> str:
    """The node label saying a node holds a verified copy of these weights (repository, revision and
    node directory): set by the operator when the node's download Job completed, its value the commit
    the fetcher pinned. The key is a digest, so it fits a label name whatever the repository's name."""
    cache = md.spec.model.cache
    path = cache.host_path.path if cache is not None and cache.host_path is not None else ""
    content = json.dumps([md.spec.model.name, revision_of(md), path.rstrip("/")])
    return f"{constants.NODE_COPY_LABEL_PREFIX}{hashlib.sha256(content.encode()).hexdigest()[:16]}"


def node_copy_affinity(md: MimoDeployment) -> dict[str, Any] | None:
    """The node selector requirement that keeps vLLM pods to nodes holding a complete copy."""
    if not node_local(md):
        return None
    return {"key": node_copy_label(md), "operator": "Exists"}


def render_cache_claim(md: MimoDeployment) -> dict[str, Any] | None:
    cache = md.spec.model.cache
    if cache is None or cache.volume_claim_template is None:
        return None
    template = cache.volume_claim_template
    spec: dict[str, Any] = {
        "accessModes": list(template.access_modes),
        "resources": {"requests": {"storage": template.size}},
    }
    if template.storage_class_name is not None:
        spec["storageClassName"] = template.storage_class_name
    name = cache_claim_name(md)
    assert name is not None
    metadata = names.object_meta(md, name, "weights")
    if template.when_deleted == "Retain":
        # No owner, so the garbage collector leaves it when the MimoDeployment goes; its deployment
        # label lets a MimoDeployment of the same name adopt it again (kube/children.py).
        del metadata["ownerReferences"]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec}


def _fetcher_args(md: MimoDeployment, config: RenderConfig) -> list[str]:
    return [
        "--repo",
        md.spec.model.name,
        "--revision",
        revision_of(md),
        "--dest",
        weights_dir(md, config),
        "--stall-seconds",
        str(config.fetch_stall_seconds),
        "--progress-port",
        str(FETCHER_PROGRESS_PORT),
    ]


def _job_template(md: MimoDeployment, config: RenderConfig, volume: dict[str, Any]) -> dict[str, Any]:
    env: list[dict[str, Any]] = []
    if md.spec.model.token_secret_ref is not None:
        ref = md.spec.model.token_secret_ref
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    container: dict[str, Any] = {
        "name": FETCHER_CONTAINER,
        "image": config.fetcher_image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["python", "-m", "mimo_operator.fetcher"],
        "args": _fetcher_args(md, config),
        "env": env,
        "ports": [
            {"name": FETCHER_PROGRESS_PORT_NAME, "containerPort": FETCHER_PROGRESS_PORT, "protocol": "TCP"}
        ],
        "volumeMounts": [{"name": WEIGHTS_VOLUME, "mountPath": config.model_mount_path}],
        # The final JSON line (reason, bytes, commit) stays in the pod status after it ends.
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        # Hashing every byte (sha256) and the transfer take about one core each; the limit keeps a
        # download from starving the node's other pods (and checkov's CKV_K8S_11 asks for one).
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "4", "memory": "2Gi"}},
        "securityContext": hardened_container_context(),
    }
    # Without the deployment label: the fetcher's pod is not a vLLM pod, and the reconcile's reading
    # of vLLM pods (why are they stuck?) must not see it. The Job controller adds job-name labels.
    # A download several deployments may share names none of them in its pod template.
    labels = {k: v for k, v in names.common_labels(md).items() if k != constants.LABEL_DEPLOYMENT}
    shared = shared_fetch_instance(md)
    if shared is not None:
        labels[constants.LABEL_INSTANCE] = shared
    return {
        "metadata": {"labels": {**labels, constants.LABEL_COMPONENT: "weights"}},
        "spec": {
            "restartPolicy": "Never",
            # The fetcher talks to the Hub only; it holds no Kubernetes credentials at all.
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            # The operator image runs as 65532 (images/operator/Dockerfile); saying so lets the pod
            # pass the "restricted" Pod Security level, and fsGroup makes the claim writable for it.
            "securityContext": {
                "seccompProfile": dict(SECCOMP),
                "runAsNonRoot": True,
                "runAsUser": IMAGE_UID,
                "runAsGroup": IMAGE_UID,
                "fsGroup": IMAGE_UID,
            },
            "containers": [container],
            "volumes": [{"name": WEIGHTS_VOLUME, **volume}],
        },
    }


def shares_download(md: MimoDeployment) -> bool:
    """Weights a download Job fetches onto a claim the user named may be shared by several
    MimoDeployments: their Job is named after the claim and the Job's content, not after the
    deployment, so a second deployment of the same repository and revision (with the same token
    Secret) on that claim finds the first one's Job instead of starting another fetcher into the same
    directory (two fetchers appending to one partial file would corrupt it)."""
    cache = md.spec.model.cache
    return cache is not None and cache.persistent_volume_claim is not None and fetch_mode(md) == "job"


def shared_fetch_instance(md: MimoDeployment) -> str | None:
    """The instance label (and name prefix) of a download Job deployments may share: its claim's name,
    cut to leave room in 63 characters; None when the download is the deployment's own."""
    if not shares_download(md):
        return None
    claim = cache_claim_name(md) or ""
    return f"{claim[:40].rstrip('-.')}-fetch"


def fetch_job_name(md: MimoDeployment, job_spec: dict[str, Any]) -> str:
    """A Job's pod template is immutable: the name carries a hash of it, so a new revision or
    image is a new Job (and the old one is pruned), never a rejected update. The hash covers the
    claim's name, so cutting that name short cannot make two claims share a Job."""
    digest = hashlib.sha256(json.dumps(job_spec, sort_keys=True).encode()).hexdigest()[:8]
    prefix = shared_fetch_instance(md) or f"{md.metadata.name}-weights"
    return f"{prefix}-{digest}"


def render_fetch_job(md: MimoDeployment, config: RenderConfig) -> dict[str, Any] | None:
    """The download Job, when the operator fetches the weights onto a claim; None otherwise (a
    node-local cache has one Job per node: render_node_fetch_job)."""
    claim = cache_claim_name(md)
    if fetch_mode(md) != "job" or claim is None:
        return None
    return _fetch_job(md, _job_template(md, config, {"persistentVolumeClaim": {"claimName": claim}}))


def render_node_fetch_job(
    md: MimoDeployment, config: RenderConfig, node: str, tolerations: list[dict[str, Any]]
) -> dict[str, Any]:
    """The download Job that fills one node's copy of a node-local cache: its pod is pinned to that
    node (by node name, as the DaemonSet controller pins its pods, so the scheduler still checks
    resources and taints) and carries the vLLM pods' tolerations. fsGroup does not apply to a
    hostPath: the node directory must be writable by UID 65532 (README, "Model weights")."""
    cache = md.spec.model.cache
    assert cache is not None and cache.host_path is not None
    template = _job_template(
        md, config, {"hostPath": {"path": cache.host_path.path, "type": "DirectoryOrCreate"}}
    )
    pod = template["spec"]
    pod["tolerations"] = tolerations
    pod["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
                ]
            }
        }
    }
    job = _fetch_job(md, template)
    job["metadata"]["annotations"] = {constants.ANNOTATION_NODE: node}
    return job


def _fetch_job(md: MimoDeployment, template: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "backoffLimit": FETCH_RETRIES,
        # A refused token or a missing revision fails the Job at once instead of FETCH_RETRIES more pods.
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": FETCHER_CONTAINER,
                        "operator": "In",
                        "values": [kind.exit_code for kind in PERMANENT_FAILURES],
                    },
                }
            ]
        },
        "template": template,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": names.object_meta(md, fetch_job_name(md, spec), "weights"),
        "spec": spec,
    }
