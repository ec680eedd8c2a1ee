"""Operator configuration: defaults, then a YAML file, then MIMO_OPERATOR_* environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mimo_operator.api.policy import DEFAULT_ALLOWED_IMAGES, AuthorPolicy
from mimo_operator.kube.lease import (
    LEASE_DURATION_SECONDS,
    RENEW_DEADLINE_SECONDS,
    RETRY_PERIOD_SECONDS,
    validate_timings,
)
from mimo_operator.models.limits import DEFAULT_ENGINE_START_SECONDS
from mimo_operator.render import DEFAULT_VLLM_IMAGE, RenderConfig
from mimo_operator.render.config import DEFAULT_API_PEERS


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIMO_OPERATOR_", extra="forbid")

    vllm_image: str = DEFAULT_VLLM_IMAGE
    """vLLM image for deployments that do not name one."""
    fetcher_image: str = RenderConfig.fetcher_image
    """Image of the weights download Jobs; the chart sets the operator's own image, which has the fetcher."""
    field_manager: str = "mimo-operator"
    """Server-side apply field manager; the one name under which the operator owns child fields."""
    resync_seconds: float = Field(default=3600.0, gt=0)
    """Every deployment is reconciled at least this often, even when no event arrives. A safety
    net only: watch events repair drift within seconds (controller-runtime's default is 10 h)."""
    workers: int = Field(default=8, ge=1, le=256)
    """Deployments reconciled concurrently."""
    namespaces: list[str] = []
    """Namespaces to watch; empty with all_namespaces false means the operator's own namespace."""
    all_namespaces: bool = False
    liveness_port: int = Field(default=8080, ge=0, le=65535)
    """Port of /healthz (0 disables it)."""
    metrics_port: int = Field(default=8081, ge=0, le=65535)
    """Port of the Prometheus /metrics endpoint (0 disables it)."""
    log_format: Literal["text", "json"] = "text"
    engine_init_seconds: int = Field(default=DEFAULT_ENGINE_START_SECONDS, ge=0)
    """Startup-probe allowance beyond weight loading (see render/probes.py)."""
    max_backoff_seconds: float = Field(default=300.0, gt=0)
    """Longest wait before retrying a deployment whose reconcile failed."""
    prometheus_address: str = "http://prometheus-operated.monitoring.svc:9090"
    """Prometheus that KEDA ScaledObjects query (spec.autoscaling.engine: keda)."""
    allowed_images: list[str] = list(DEFAULT_ALLOWED_IMAGES)
    """Image repositories spec.serving.image may name (api/policy.py): `org/name`, a prefix ending in
    `/`, or `*`. The configured vllm_image is always allowed."""
    allow_host_path: bool = False
    """Whether spec.model.cache.hostPath may mount a node directory."""
    allow_env_secrets: bool = False
    """Whether spec.serving.env may read Secrets other than the spec's tokenSecretRef and apiKeySecretRef."""
    allowed_priority_classes: list[str] = []
    """PriorityClasses spec.placement.priorityClassName may name; `*`: any; empty: none."""
    vllm_run_as_user: int | None = Field(default=None, ge=1)
    """Run vLLM pods as this uid, read-only root filesystem, "restricted" Pod Security (render/security.py).
    None: as the image's user (root for vllm/vllm-openai)."""
    network_policy: bool = True
    """A NetworkPolicy per deployment: ingress only between its pods and to the API port from
    network_policy_api_from and the route's Gateway namespace. Inert where the CNI enforces none."""
    network_policy_api_from: list[dict[str, Any]] = [dict(peer) for peer in DEFAULT_API_PEERS]
    """NetworkPolicyPeer objects allowed to the API port (clients, the Prometheus scraper)."""
    operator_peer: dict[str, Any] | None = None
    """The operator's pods as a NetworkPolicyPeer (the chart sets its namespace and labels): admitted
    to the weights download pod's progress port, which the operator reads while a download runs."""
    node_recheck_seconds: float = Field(default=RenderConfig.node_recheck_seconds, gt=0)
    """How often a deployment with a node-local weights cache (hostPath, fetch: job) looks for nodes
    that joined its pool, to give them a copy."""
    discovery_seconds: float = Field(default=300.0, gt=0)
    """How long a finding that an optional API (KEDA, PodMonitor) is or is not served is reused."""
    leader_elect: bool = False
    """Reconcile only while holding the leader Lease (kube/lease.py), so several replicas can run."""
    lease_name: str = "mimo-operator"
    """Name of the coordination.k8s.io Lease; replicas of one installation share it."""
    lease_namespace: str = ""
    """Namespace of the Lease; empty means POD_NAMESPACE, else the first watched namespace."""
    lease_duration_seconds: float = Field(default=LEASE_DURATION_SECONDS, gt=0)
    """A standby takes over a lease it has seen unchanged for this long (client-go's default)."""
    renew_deadline_seconds: float = Field(default=RENEW_DEADLINE_SECONDS, gt=0)
    """The leader stops writing and exits when it could not renew for this long."""
    retry_period_seconds: float = Field(default=RETRY_PERIOD_SECONDS, gt=0)
    """How often the leader renews and a standby looks at the lease."""

    @model_validator(mode="after")
    def _lease_timings(self) -> OperatorSettings:
        validate_timings(self.lease_duration_seconds, self.renew_deadline_seconds, self.retry_period_seconds)
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (init kwargs carry the file's values); both beat defaults.
        return (env_settings, init_settings)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> OperatorSettings:
        values: dict[str, Any] = {}
        if config_file is not None:
            loaded = yaml.safe_load(config_file.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{config_file}: expected a mapping of settings")
            values.update(loaded)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def author_policy(self) -> AuthorPolicy:
        return AuthorPolicy(
            allowed_images=tuple(self.allowed_images),
            allow_host_path=self.allow_host_path,
            allow_env_secrets=self.allow_env_secrets,
            allowed_priority_classes=tuple(self.allowed_priority_classes),
        )

    def render_config(self) -> RenderConfig:
        return RenderConfig(
            vllm_image=self.vllm_image,
            fetcher_image=self.fetcher_image,
            engine_init_seconds=self.engine_init_seconds,
            prometheus_address=self.prometheus_address,
            network_policy_api_from=tuple(self.network_policy_api_from) if self.network_policy else None,
            operator_peer=self.operator_peer,
            vllm_run_as_user=self.vllm_run_as_user,
            node_recheck_seconds=self.node_recheck_seconds,
        )
