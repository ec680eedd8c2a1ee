"""The operator's own Prometheus metrics (mimo_operator_*), served on the metrics port.

Names follow Prometheus conventions: a `mimo_operator_` prefix, base units (seconds), `_total`
counters. Each registry is private to one operator instance so tests can run several in a process.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from mimo_operator.handlers.reconcile import Outcome

Key = tuple[str, str]
# Not `namespace`: Prometheus sets that target label to the operator's own namespace when it scrapes.
DEPLOYMENT_LABELS = ["deployment_namespace", "deployment"]


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "mimo_operator_reconciles_total",
            "Reconciles of MimoDeployments by result (changed, unchanged, error).",
            ["result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "mimo_operator_reconcile_duration_seconds",
            "Time one reconcile took, by result.",
            ["result"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.api_requests = Counter(
            "mimo_operator_api_requests_total",
            "Kubernetes API requests the operator sent, by verb, resource and HTTP status code.",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self.deployments = Gauge(
            "mimo_operator_deployments",
            "MimoDeployments by phase.",
            ["phase"],
            registry=self.registry,
        )
        self.time_to_ready = Histogram(
            "mimo_operator_time_to_ready_seconds",
            "Seconds from a spec change (operator-observed) until the deployment was Ready again.",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600),
            registry=self.registry,
        )
        self.gpus_planned = Gauge(
            "mimo_operator_gpus_planned",
            "GPUs the desired replicas of a deployment hold.",
            DEPLOYMENT_LABELS,
            registry=self.registry,
        )
        self.gpus_ready = Gauge(
            "mimo_operator_gpus_ready",
            "GPUs of a deployment's replicas that are ready.",
            DEPLOYMENT_LABELS,
            registry=self.registry,
        )
        self.scaling_limited = Gauge(
            "mimo_operator_scaling_limited",
            "1 while the autoscaler of a deployment is held at maxReplicas and wants more.",
            DEPLOYMENT_LABELS,
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "mimo_operator_reconcile_errors_total",
            "Reconciles that raised, by kind: api (the API server refused or was unreachable) or "
            "internal (a programming error, logged with its traceback).",
            ["kind"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "mimo_operator_leader",
            "1 while this replica reconciles (holds the leader Lease, or runs without leader election), "
            "0 while it stands by.",
            registry=self.registry,
        )
        self.replicas_loading = Gauge(
            "mimo_operator_replicas_loading",
            "Desired replicas of a deployment that are not ready yet (loading, or unable to start: "
            "the Ready condition says which).",
            DEPLOYMENT_LABELS,
            registry=self.registry,
        )
        self.loading_since = Gauge(
            "mimo_operator_loading_since_timestamp_seconds",
            "Unix time the oldest replica of a deployment that is still not ready was ordered "
            "(operator-observed); 0 when every replica is ready.",
            DEPLOYMENT_LABELS,
            registry=self.registry,
        )
        self.startup_budget = Gauge(
            "mimo_operator_startup_budget_seconds",
            "How long one replica of a deployment may take to load (its startupProbe's budget).",
            DEPLOYMENT_LABELS,
            registry=self.registry,
        )
        self.replica_time_to_ready = Histogram(
            "mimo_operator_replica_time_to_ready_seconds",
            "Seconds from a replica being ordered until it was ready (operator-observed, per replica).",
            buckets=(60, 120, 300, 600, 900, 1200, 1800, 2400, 3600, 5400, 7200),
            registry=self.registry,
        )
        self._loading: dict[Key, list[float]] = {}  # order times of replicas not ready, oldest first
        self._ready: dict[Key, int] = {}
        self._phases: dict[Key, str] = {}
        self._changed_at: dict[Key, float] = {}

    def on_leading(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def on_request(self, verb: str, resource: str, code: int) -> None:
        self.api_requests.labels(verb, resource, str(code)).inc()

    def on_error(self, kind: str) -> None:
        self.reconcile_errors.labels(kind).inc()

    def on_outcome(self, key: Key, outcome: Outcome | None, seconds: float) -> None:
        if outcome is None:
            result = "error"
        elif outcome.applied or outcome.pruned or outcome.status_written:
            result = "changed"
        else:
            result = "unchanged"
        self.reconciles.labels(result).inc()
        self.reconcile_seconds.labels(result).observe(seconds)
        if outcome is None or outcome.phase is None:
            return
        self.gpus_planned.labels(*key).set(outcome.gpus_planned)
        self.gpus_ready.labels(*key).set(outcome.gpus_ready)
        self.scaling_limited.labels(*key).set(1 if outcome.scaling_limited else 0)
        self._track_loading(key, outcome)
        if outcome.applied and outcome.phase != "Ready":
            self._changed_at.setdefault(key, time.monotonic())
        if outcome.phase == "Ready" and key in self._changed_at:
            self.time_to_ready.observe(time.monotonic() - self._changed_at.pop(key))
        self._phases[key] = outcome.phase
        self._publish_phases()

    def _track_loading(self, key: Key, outcome: Outcome) -> None:
        """Replicas that became ready leave the queue oldest first (their wait is observed); replicas
        ordered join it; replicas scaled away before they were ready leave it newest first, unobserved."""
        now = time.time()
        loading = self._loading.setdefault(key, [])
        became_ready = max(0, outcome.ready_replicas - self._ready.get(key, 0))
        for ordered in loading[:became_ready]:
            self.replica_time_to_ready.observe(now - ordered)
        del loading[:became_ready]
        self._ready[key] = outcome.ready_replicas
        wanted = max(0, outcome.replicas - outcome.ready_replicas)
        loading.extend([now] * (wanted - len(loading)))
        del loading[wanted:]
        self.replicas_loading.labels(*key).set(wanted)
        self.loading_since.labels(*key).set(loading[0] if loading else 0)
        self.startup_budget.labels(*key).set(outcome.startup_budget_seconds)

    def forget(self, key: Key) -> None:
        gauges = (
            self.gpus_planned,
            self.gpus_ready,
            self.scaling_limited,
            self.replicas_loading,
            self.loading_since,
            self.startup_budget,
        )
        for gauge in gauges:
            if key in self._phases:
                gauge.remove(*key)
        self._loading.pop(key, None)
        self._ready.pop(key, None)
        self._phases.pop(key, None)
        self._changed_at.pop(key, None)
        self._publish_phases()

    def _publish_phases(self) -> None:
        counts: dict[str, int] = dict.fromkeys(("Pending", "Deploying", "Ready", "Degraded", "Failed"), 0)
        for phase in self._phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            self.deployments.labels(phase).set(count)

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)
