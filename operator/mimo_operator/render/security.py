"""Security contexts of the vLLM pods, and running vLLM as a non-root user (operator setting
vllm_run_as_user, chart value vllmPods.runAsUser).

By default the pods run as the image's user. The upstream vllm/vllm-openai image has no USER directive
and no non-root account (vLLM's docker/Dockerfile: packages installed system-wide with `uv pip install
--system`, ENTRYPOINT as root), so it runs as root. It can run as another uid when that uid finds a
writable home and a user name: torch's compile cache asks `getpass.getuser()` at import, which fails
for a uid without a passwd entry unless USER or LOGNAME is set (kserve/kserve#5666), and vLLM, Triton,
FlashInfer, numba and outlines keep their caches under $HOME (vllm-project/vllm#10185: HOME=/tmp is the
known fix). With a uid set, the pods get exactly that: USER, LOGNAME and HOME on an emptyDir, /tmp on
an emptyDir, a read-only root filesystem, and the "restricted" Pod Security level's settings. Not on
by default: nobody here has run the pinned image that way on a GPU, and the KServe maintainers call the
workaround brittle across torch releases.
"""

from __future__ import annotations

from typing import Any

from mimo_operator.render.config import RenderConfig

USER_NAME = "vllm"
HOME = "/home/vllm"
HOME_VOLUME = "home"
TMP_VOLUME = "tmp"
# Compile caches (torch.compile, Triton, FlashInfer JIT) of a 48-layer MoE take a few GiB.
HOME_SIZE_LIMIT = "20Gi"
TMP_SIZE_LIMIT = "10Gi"
SECCOMP = {"type": "RuntimeDefault"}


def pod_security_context(config: RenderConfig) -> dict[str, Any]:
    """Pod-level: the default seccomp profile (so injected sidecars inherit it), and the uid."""
    context: dict[str, Any] = {"seccompProfile": dict(SECCOMP)}
    uid = config.vllm_run_as_user
    if uid is not None:
        context.update(
            runAsNonRoot=True,
            runAsUser=uid,
            runAsGroup=uid,
            # The weights volume becomes group-writable for vLLM's own downloads (fetch: vllm); the
            # check on the volume's root keeps a 300 GB claim from being walked on every start.
            fsGroup=uid,
            fsGroupChangePolicy="OnRootMismatch",
        )
    return context


def hardened_container_context() -> dict[str, Any]:
    """What every container the operator renders runs with: no privilege escalation, no capabilities,
    the runtime's default seccomp profile."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": dict(SECCOMP),
    }


def container_security_context(config: RenderConfig) -> dict[str, Any]:
    context = hardened_container_context()
    if config.vllm_run_as_user is not None:
        context.update(runAsNonRoot=True, readOnlyRootFilesystem=True)
    return context


def non_root_env(config: RenderConfig) -> list[dict[str, Any]]:
    if config.vllm_run_as_user is None:
        return []
    return [
        {"name": "HOME", "value": HOME},
        {"name": "USER", "value": USER_NAME},
        {"name": "LOGNAME", "value": USER_NAME},
    ]


def non_root_volumes(config: RenderConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volume mounts): the writable places a read-only root filesystem leaves."""
    if config.vllm_run_as_user is None:
        return [], []
    volumes = [
        {"name": HOME_VOLUME, "emptyDir": {"sizeLimit": HOME_SIZE_LIMIT}},
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}},
    ]
    mounts = [{"name": HOME_VOLUME, "mountPath": HOME}, {"name": TMP_VOLUME, "mountPath": "/tmp"}]
    return volumes, mounts
