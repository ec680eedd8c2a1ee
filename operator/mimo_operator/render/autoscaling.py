"""The autoscaler that scales a MimoDeployment through its scale subresource: an autoscaling/v2
HorizontalPodAutoscaler, or a KEDA ScaledObject when `engine: keda` and KEDA is installed.

Its target is the MimoDeployment itself, so the CR stays the only writer of pod counts: the HPA
writes spec.replicas, the operator turns that into StatefulSets. Metrics are vLLM's own, read per
leader pod through a Prometheus Adapter that renames `vllm:x` to `vllm_x` (README, "Autoscaling").
"""

from __future__ import annotations

from typing import Any

from mimo_operator.api import MimoDeployment
from mimo_operator.api import constants as c
from mimo_operator.render import names
from mimo_operator.render.config import RenderConfig

# spec.autoscaling.metric -> the Pods metric the Prometheus Adapter serves for vLLM's series
# (vLLM 0.33 metrics: vllm:num_requests_waiting, vllm:kv_cache_usage_perc, vllm:num_requests_running).
ADAPTER_METRICS = {
    "queueDepth": "vllm_num_requests_waiting",
    "kvCacheUsage": "vllm_kv_cache_usage_perc",
    "runningRequests": "vllm_num_requests_running",
}


def render_hpa(md: MimoDeployment) -> dict[str, Any] | None:
    auto = md.spec.autoscaling
    if auto is None or auto.engine != "hpa":
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": names.object_meta(md, md.metadata.name, "autoscaler"),
        "spec": {
            "scaleTargetRef": {"apiVersion": c.API_VERSION, "kind": c.KIND, "name": md.metadata.name},
            "minReplicas": auto.min_replicas,
            "maxReplicas": auto.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": ADAPTER_METRICS[auto.metric]},
                        "target": {"type": "AverageValue", "averageValue": auto.target},
                    },
                }
            ],
            "behavior": {
                # A queue means users are waiting now: add capacity at once.
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },
                # A replica takes many minutes to come back: remove one at a time, after a long calm.
                "scaleDown": {
                    "stabilizationWindowSeconds": auto.scale_down_stabilization_seconds,
                    "selectPolicy": "Min",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                },
            },
        },
    }


# PromQL per metric for KEDA's Prometheus trigger: the per-replica average over leader pods, so the
# threshold means the same as the HPA's AverageValue target.
KEDA_QUERIES = {
    "queueDepth": "vllm:num_requests_waiting",
    "kvCacheUsage": "vllm:kv_cache_usage_perc",
    "runningRequests": "vllm:num_requests_running",
}


def render_scaled_object(md: MimoDeployment, config: RenderConfig) -> dict[str, Any] | None:
    auto = md.spec.autoscaling
    if auto is None or auto.engine != "keda" or not config.keda_available:
        return None
    series = KEDA_QUERIES[auto.metric]
    query = f'avg({series}{{namespace="{md.metadata.namespace}",pod=~"{md.metadata.name}-.*"}})'
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": names.object_meta(md, md.metadata.name, "autoscaler"),
        "spec": {
            "scaleTargetRef": {"apiVersion": c.API_VERSION, "kind": c.KIND, "name": md.metadata.name},
            "minReplicaCount": auto.min_replicas,
            "maxReplicaCount": auto.max_replicas,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {"stabilizationWindowSeconds": 0},
                        "scaleDown": {
                            "stabilizationWindowSeconds": auto.scale_down_stabilization_seconds,
                            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                        },
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": config.prometheus_address,
                        "query": query,
                        "threshold": auto.target,
                    },
                }
            ],
        },
    }
