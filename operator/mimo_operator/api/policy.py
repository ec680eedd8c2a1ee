"""What a MimoDeployment's author may ask for: the installer's policy, checked before anything is made.

The operator creates pods with its own rights, so whoever may create a MimoDeployment would otherwise
choose any image, mount any node directory, read any Secret of the namespace through `env` and pick any
PriorityClass. The policy narrows that to what the person installing the operator allows (chart values
`policy.*`, operator settings `allowed_images`, `allow_host_path`, `allow_env_secrets`,
`allowed_priority_classes`). A spec that asks for more is refused as a whole: it gets phase Failed with
reason `NotAllowed`, one line per refusal naming the field, and no child is created or changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mimo_operator.api.resource import MimoDeployment

REASON = "NotAllowed"
ANY = "*"
# The images the operator's command lines are written and tested for (render/config.py pins their tag):
# vLLM's CUDA and ROCm builds on Docker Hub.
DEFAULT_ALLOWED_IMAGES: tuple[str, ...] = ("vllm/vllm-openai", "vllm/vllm-openai-rocm")
DOCKER_HUB = "docker.io"


def image_repository(reference: str) -> str:
    """The repository of an image reference, normalised the way the container runtime resolves it:
    no tag or digest, Docker Hub's host made explicit (`vllm/vllm-openai:v1` is
    `docker.io/vllm/vllm-openai`, `ubuntu` is `docker.io/library/ubuntu`)."""
    name = reference.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1])] + last[-1].split(":", 1)[0]
    first, _, rest = name.partition("/")
    if not rest:
        return f"{DOCKER_HUB}/library/{first}"
    if "." in first or ":" in first or first == "localhost":
        return name
    return f"{DOCKER_HUB}/{name}"


def _prefix(entry: str) -> str:
    """`myorg/` is `docker.io/myorg/`, `registry.local/` stays: normalised like a repository under it."""
    return image_repository(entry + "x").removesuffix("x")


def _image_allowed(reference: str, allowed: tuple[str, ...]) -> bool:
    repository = image_repository(reference)
    for entry in allowed:
        if entry == ANY:
            return True
        if entry.endswith("/"):  # every repository under a registry or organisation
            if repository.startswith(_prefix(entry)):
                return True
        elif repository == image_repository(entry):
            return True
    return False


@dataclass(frozen=True)
class AuthorPolicy:
    allowed_images: tuple[str, ...] = DEFAULT_ALLOWED_IMAGES
    """Repositories spec.serving.image may name: `registry/org/name` (any tag or digest), a prefix
    ending in `/` (everything under it), or `*`. The operator's own configured images always are."""
    allow_host_path: bool = False
    """Whether spec.model.cache.hostPath may mount a node directory (read-write, into a root container)."""
    allow_env_secrets: bool = False
    """Whether spec.serving.env may read Secrets other than the spec's tokenSecretRef and apiKeySecretRef."""
    allowed_priority_classes: tuple[str, ...] = ()
    """PriorityClasses spec.placement.priorityClassName may name (`*`: any). Empty: none."""

    def refusals(self, md: MimoDeployment, configured_images: tuple[str, ...] = ()) -> list[str]:
        """One line per thing the spec asks for that this policy does not allow; empty when allowed."""
        return [
            *self._image(md, configured_images),
            *self._host_path(md),
            *self._env_secrets(md),
            *self._priority_class(md),
        ]

    def _image(self, md: MimoDeployment, configured_images: tuple[str, ...]) -> list[str]:
        image = md.spec.serving.image
        allowed = self.allowed_images + configured_images
        if image is None or _image_allowed(image, allowed):
            return []
        return [
            f"spec.serving.image {image!r} is not from an allowed repository "
            f"({', '.join(allowed) or 'none'}; chart value policy.allowedImages)"
        ]

    def _host_path(self, md: MimoDeployment) -> list[str]:
        cache = md.spec.model.cache
        if self.allow_host_path or cache is None or cache.host_path is None:
            return []
        return [
            "spec.model.cache.hostPath mounts a node directory, which this operator does not allow "
            "(chart value policy.allowHostPath); use a persistentVolumeClaim or volumeClaimTemplate"
        ]

    def _env_secrets(self, md: MimoDeployment) -> list[str]:
        if self.allow_env_secrets:
            return []
        refs = (md.spec.model.token_secret_ref, md.spec.serving.api_key_secret_ref)
        named = {ref.name for ref in refs if ref is not None}
        found = []
        for index, variable in enumerate(md.spec.serving.env):
            secret = _secret_name(variable)
            if secret is not None and secret not in named:
                found.append(
                    f"spec.serving.env[{index}] ({variable.get('name')}) reads Secret {secret!r}; env may "
                    "read only the Secrets of tokenSecretRef and apiKeySecretRef "
                    "(chart value policy.allowEnvSecrets)"
                )
        return found

    def _priority_class(self, md: MimoDeployment) -> list[str]:
        name = md.spec.placement.priority_class_name
        allowed = self.allowed_priority_classes
        if not name or ANY in allowed or name in allowed:
            return []
        return [
            f"spec.placement.priorityClassName {name!r} is not allowed "
            f"({', '.join(allowed) or 'none'}; chart value policy.allowedPriorityClasses)"
        ]


def _secret_name(variable: dict[str, Any]) -> str | None:
    value_from = variable.get("valueFrom")
    if not isinstance(value_from, dict):
        return None
    ref = value_from.get("secretKeyRef")
    if not isinstance(ref, dict):
        return None
    return str(ref.get("name", ""))
