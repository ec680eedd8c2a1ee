"""A Gateway API HTTPRoute to the deployment, with a request timeout a reasoning request can live with.

Gateways cut requests at their own defaults (often 15-60 s); a chain-of-thought answer from this model
runs for minutes (the MiMo guide asks for 120-300 s). The route's timeout is therefore derived from the
plan: the time the slowest plausible per-request decode speed needs to write max-model-len tokens,
between a floor and a ceiling. When the cluster also serves the Gateway API Inference Extension's
InferencePool, the route goes through a pool of the pods that serve (leaders of multi-node groups), so
a KV-cache-aware endpoint picker can choose the replica.
"""

from __future__ import annotations

import math
from typing import Any

from mimo_operator.api import MimoDeployment, constants
from mimo_operator.planner import Plan
from mimo_operator.planner.memory import MAX_NUM_SEQS
from mimo_operator.render import names
from mimo_operator.render.config import RenderConfig

GATEWAY_GROUP = "gateway.networking.k8s.io"
INFERENCE_GROUP = "inference.networking.k8s.io"
# The guide's upper figure for chain-of-thought requests (../shared/seed, "Request timeouts": 120-300 s).
MIN_REQUEST_TIMEOUT_SECONDS = 300
# One hour: a client that needs longer should stream, and a held connection that long is already at the
# limit of what load balancers in front of a Gateway keep open.
MAX_REQUEST_TIMEOUT_SECONDS = 3600
TIMEOUT_GRANULE_SECONDS = 10


def slowest_request_tokens_per_second(plan: Plan) -> float | None:
    """Decode speed one request gets when the replica is full: the plan's roofline throughput of the
    replica shared by max_num_seqs running requests (vLLM runs at most that many)."""
    per_gpu = plan.est_decode_tokens_per_s_per_gpu
    if not per_gpu:
        return None
    return per_gpu * plan.gpus_per_replica / MAX_NUM_SEQS


def request_timeout_seconds(md: MimoDeployment, plan: Plan) -> int:
    route = md.spec.route
    if route is not None and route.request_timeout_seconds != "auto":
        return route.request_timeout_seconds
    speed = slowest_request_tokens_per_second(plan)
    if speed is None:  # a custom GPU without a bandwidth figure: no estimate, so the ceiling
        return MAX_REQUEST_TIMEOUT_SECONDS
    seconds = math.ceil(plan.max_model_len / speed / TIMEOUT_GRANULE_SECONDS) * TIMEOUT_GRANULE_SECONDS
    return max(MIN_REQUEST_TIMEOUT_SECONDS, min(MAX_REQUEST_TIMEOUT_SECONDS, seconds))


def _uses_pool(md: MimoDeployment, config: RenderConfig) -> bool:
    route = md.spec.route
    return route is not None and route.endpoint_picker is not None and config.inference_pool_available


def render_inference_pool(md: MimoDeployment, plan: Plan, config: RenderConfig) -> dict[str, Any] | None:
    route = md.spec.route
    if route is None or route.endpoint_picker is None or not _uses_pool(md, config):
        return None
    return {
        "apiVersion": f"{INFERENCE_GROUP}/v1",
        "kind": "InferencePool",
        "metadata": names.object_meta(md, md.metadata.name, "route"),
        "spec": {
            # Only pods that answer HTTP: headless workers of a multi-node group have no API port.
            "selector": {"matchLabels": names.leader_selector(md, plan.nodes_per_replica > 1)},
            "targetPorts": [{"number": constants.HTTP_PORT}],
            "endpointPickerRef": {
                "name": route.endpoint_picker.name,
                "port": {"number": route.endpoint_picker.port},
            },
        },
    }


def render_http_route(md: MimoDeployment, plan: Plan, config: RenderConfig) -> dict[str, Any] | None:
    route = md.spec.route
    if route is None or not config.gateway_api_available:
        return None
    parent: dict[str, Any] = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": route.gateway.name}
    if route.gateway.namespace:
        parent["namespace"] = route.gateway.namespace
    if route.gateway.section_name:
        parent["sectionName"] = route.gateway.section_name
    backend: dict[str, Any]
    if _uses_pool(md, config):
        backend = {"group": INFERENCE_GROUP, "kind": "InferencePool", "name": md.metadata.name}
    else:
        backend = {"name": names.api_service_name(md), "port": constants.HTTP_PORT}
    timeout = f"{request_timeout_seconds(md, plan)}s"
    spec: dict[str, Any] = {
        "parentRefs": [parent],
        "rules": [
            {
                # The OpenAI-compatible API only; /metrics and /health stay inside the cluster.
                "matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
                "backendRefs": [backend],
                "timeouts": {"request": timeout, "backendRequest": timeout},
            }
        ],
    }
    if route.hostnames:
        spec["hostnames"] = list(route.hostnames)
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": names.object_meta(md, md.metadata.name, "route"),
        "spec": spec,
    }
