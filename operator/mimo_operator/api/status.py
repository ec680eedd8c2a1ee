"""The MimoDeployment status: phase, conditions, the plan as the planner chose it, and replica counts."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

Phase = Literal["Pending", "Deploying", "Ready", "Degraded", "Failed"]
ConditionType = Literal["Planned", "Ready", "Progressing", "Degraded", "ModelPinned", "ChildrenOwned"]


class _Status(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_attribute_docstrings=True
    )


class Condition(_Status):
    type: str
    """Planned, Ready, Progressing, Degraded, ModelPinned or ChildrenOwned."""
    status: Literal["True", "False", "Unknown"]
    reason: str
    """CamelCase reason."""
    message: str = ""
    last_transition_time: str
    """RFC 3339 time the status last changed."""
    observed_generation: int | None = None


class PlanStatus(_Status):
    gpus_per_replica: int
    gpus_per_pod: int
    nodes_per_replica: int
    tensor_parallel: int
    pipeline_parallel: int
    data_parallel: int
    expert_parallel: bool
    mtp: bool
    max_model_len: int
    weights_gi_b_per_gpu: float
    reserved_gi_b_per_gpu: float
    kv_cache_gi_b_per_gpu: float
    kv_cache_tokens: int
    max_concurrent_at_max_len: int
    summary: str
    """One line a person reads in kubectl get -o wide."""
    hash: str
    """Changes only when the rendered workload must change."""


class MimoDeploymentStatus(_Status):
    observed_generation: int | None = None
    phase: Phase | None = None
    conditions: list[Condition] = []
    plan: PlanStatus | None = None
    replicas: int | None = None
    """Replicas desired (what the scale subresource reports)."""
    ready_replicas: int | None = None
    """Replicas whose every pod is ready."""
    ready: str | None = None
    """readyReplicas/replicas, for kubectl get."""
    selector: str | None = None
    """Label selector of the leader pods, for the scale subresource and autoscalers."""
    endpoint: str | None = None
    """In-cluster URL of the OpenAI-compatible API."""
