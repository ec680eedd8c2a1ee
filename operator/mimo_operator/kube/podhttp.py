"""Plain HTTP to a pod by its IP, not through the API server: how the operator reads a weights
download pod's progress while it runs (as Prometheus reads a scrape target). The deployment's
NetworkPolicy admits the operator's pods to that port; anything that fails is simply no answer."""

from __future__ import annotations

from typing import Any

import aiohttp

# A download pod that does not answer within this is asked again at the next look (a minute later):
# the reconcile must not wait on it.
POD_HTTP_TIMEOUT_SECONDS = 2.0


async def pod_json(
    ip: str, port: int, path: str, timeout: float = POD_HTTP_TIMEOUT_SECONDS
) -> dict[str, Any] | None:
    """GET http://ip:port/path as a JSON object; None when the pod does not answer with one."""
    host = f"[{ip}]" if ":" in ip else ip
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(f"http://{host}:{port}{path}") as answer,
        ):
            if answer.status != 200:
                return None
            data = await answer.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return None
    return data if isinstance(data, dict) else None
