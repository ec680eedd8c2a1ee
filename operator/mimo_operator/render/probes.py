"""Health probes sized for a model that takes many minutes to load.

While vLLM loads weights its port refuses connections, so a liveness probe alone would kill it in a
loop. A startupProbe holds the other probes off for a budget derived from the bytes each pod reads:
weights per pod / load rate + engine initialisation. Readiness then gates traffic on /health, and
liveness restarts only an engine that has been dead for minutes, never one that is merely busy.
"""

from __future__ import annotations

import math
from typing import Any

from mimo_operator.api import MimoDeployment, constants
from mimo_operator.planner import Plan
from mimo_operator.planner.coldstart import ColdStart, cold_start, load_seconds
from mimo_operator.render.config import RenderConfig
from mimo_operator.render.weights import fetch_mode

STARTUP_PERIOD_SECONDS = 10


# Multi-node groups share one pod template, and every rank checks its group's head: rank 0 its own
# /health, the headless ranks (which serve no HTTP) the head's. A worker whose head is gone or broken is
# then unready and, after the liveness budget, restarted, instead of reporting healthy while its process
# hangs in a collective that will never finish (vLLM issues #11996, #32136). python3 is in every vLLM
# image; curl is not guaranteed.
def _group_health_script(head: str) -> str:
    return (
        f'if [ "$NODE_RANK" = "0" ]; then h=127.0.0.1; else h={head}; fi; '
        'exec python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" '
        f'"http://$h:{constants.HTTP_PORT}/health"'
    )


def startup_budget_seconds(md: MimoDeployment, plan: Plan, config: RenderConfig) -> int:
    configured = md.spec.probes.startup_budget_seconds
    if configured != "auto":
        return configured
    budget = load_seconds(plan, md.spec.probes.load_rate_mi_bps) + config.engine_init_seconds
    return int(math.ceil(budget / STARTUP_PERIOD_SECONDS) * STARTUP_PERIOD_SECONDS)


def cold_start_for(md: MimoDeployment, plan: Plan, config: RenderConfig) -> ColdStart:
    """The plan's cold-start estimate with this deployment's cache: an emptyDir (no cache source)
    makes vLLM download on every start; hostPath or a claim keeps what vLLM fetched."""
    cache = md.spec.model.cache
    sources = (
        () if cache is None else (cache.persistent_volume_claim, cache.host_path, cache.volume_claim_template)
    )
    return cold_start(
        plan,
        fetch_mode(md),
        download_every_start=all(source is None for source in sources),
        download_rate_mib_per_s=md.spec.model.download_rate_mi_bps,
        load_rate_mib_per_s=md.spec.probes.load_rate_mi_bps,
        engine_start_seconds=config.engine_init_seconds,
    )


def _check(head: str | None) -> dict[str, Any]:
    if head is not None:
        return {"exec": {"command": ["/bin/sh", "-c", _group_health_script(head)]}}
    return {"httpGet": {"path": "/health", "port": "http"}}


def probes(md: MimoDeployment, plan: Plan, config: RenderConfig, head: str | None) -> dict[str, Any]:
    """`head`: the DNS name of rank 0 of the pod's multi-node group; None for a single-node replica."""
    budget = startup_budget_seconds(md, plan, config)
    return {
        "startupProbe": {
            **_check(head),
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": budget // STARTUP_PERIOD_SECONDS,
        },
        "readinessProbe": {
            **_check(head),
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        # /health answers 503 only once the engine died; a long-running batch does not stall it, but
        # allow 3 minutes of silence before a restart that costs a full weight reload.
        "livenessProbe": {
            **_check(head),
            "periodSeconds": 30,
            "timeoutSeconds": 10,
            "failureThreshold": 6,
        },
    }
