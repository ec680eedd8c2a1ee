"""The MimoDeployment API (v1alpha1): pydantic models that are the single source of truth for the CRD."""

from mimo_operator.api.resource import MimoDeployment, ObjectMeta, SpecInvalid, parse_mimo_deployment
from mimo_operator.api.spec import MimoDeploymentSpec
from mimo_operator.api.status import AutoscalingStatus, Condition, MimoDeploymentStatus, PlanStatus

__all__ = [
    "AutoscalingStatus",
    "Condition",
    "MimoDeployment",
    "MimoDeploymentSpec",
    "MimoDeploymentStatus",
    "ObjectMeta",
    "PlanStatus",
    "SpecInvalid",
    "parse_mimo_deployment",
]
