"""The whole MimoDeployment object as the operator parses it from the API server or a file."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mimo_operator.api.constants import MAX_NAME_LENGTH
from mimo_operator.api.spec import MimoDeploymentSpec
from mimo_operator.api.status import MimoDeploymentStatus


class ObjectMeta(BaseModel):
    """The parts of metadata the operator uses; the rest is ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    namespace: str = "default"
    uid: str = ""
    generation: int = 0
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class MimoDeployment(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    api_version: Literal["serving.mimo.dev/v1alpha1"] = Field(
        default="serving.mimo.dev/v1alpha1", alias="apiVersion"
    )
    kind: Literal["MimoDeployment"] = "MimoDeployment"
    metadata: ObjectMeta
    spec: MimoDeploymentSpec = MimoDeploymentSpec()
    status: MimoDeploymentStatus = MimoDeploymentStatus()


class SpecInvalid(Exception):
    """The object does not parse: a permanent error until the user edits it."""


def parse_mimo_deployment(body: dict[str, Any]) -> MimoDeployment:
    """Parse a MimoDeployment, turning pydantic's errors into one line per field (`spec.gpu.type: ...`)."""
    try:
        return MimoDeployment.model_validate(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"])
            problems.append(f"{where}: {err['msg']}")
        raise SpecInvalid("; ".join(problems)) from None
