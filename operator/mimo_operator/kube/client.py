"""A small asyncio client for the Kubernetes API: the only code that sends requests the operator makes.

It reuses the credentials kopf logged in with (`kopf.ConnectionInfo`), keeps one connection pool for
the process, and counts every request by verb and resource so tests and metrics can prove what a
reconcile cost (a no-op reconcile must make no writes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

# Lets audit logs and tests tell the operator's requests from anyone else's.
USER_AGENT = "mimo-operator/0.1.0"
WRITE_VERBS = frozenset({"create", "apply", "patch", "update", "delete"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def resource_of(path: str) -> str:
    """`statefulsets`, or `mimodeployments/status` for a subresource, from a REST path."""
    segments = path.split("?", 1)[0].strip("/").split("/")
    start = 2 if segments[0] == "api" else 3  # /api/v1/... or /apis/<group>/<version>/...
    rest = segments[start:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    plural = rest[0] if rest else ""
    return f"{plural}/{rest[2]}" if len(rest) > 2 else plural


def _decode(text: str) -> dict[str, Any]:
    """The JSON body, or the text as a message: some errors (an unknown API group's 404) are plain."""
    if not text:
        return {}
    try:
        decoded = json.loads(text)
    except ValueError:
        return {"message": text.strip()}
    return decoded if isinstance(decoded, dict) else {"items": decoded}


def _malformed(payload: dict[str, Any]) -> bool:
    """A server-side apply body of the wrong shape (a string where a map belongs) comes back as a
    500, but retrying cannot help: it is the request that is wrong."""
    return "failed to create typed patch object" in str(payload.get("message", ""))


class ApiError(Exception):
    def __init__(self, status: int, verb: str, path: str, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.reason = str(body.get("reason", ""))
        self.message = str(body.get("message") or body)
        self.malformed = _malformed(body)
        super().__init__(f"{verb} {path}: {status} {self.message}")


class WriteFenced(Exception):
    """A write refused before it was sent: this replica may not write (it is not, or no longer
    surely, the leader; see kube/lease.py). Not an ApiError: the API server never saw it."""

    def __init__(self, verb: str, path: str) -> None:
        super().__init__(f"{verb} {path}: refused locally, this replica does not hold the leader lease")


class KubeClient:
    """Async REST client; construct with `connect()` and close with `close()`."""

    def __init__(
        self,
        server: str,
        ssl_context: ssl.SSLContext | bool,
        headers: dict[str, str],
        on_request: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl_context
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        self.requests: Counter[tuple[str, str]] = Counter()
        self._on_request = on_request
        # With leader election: asked before every request that is not a read, including each
        # retry, so a replica that lost (or may have lost) its lease sends nothing that changes state.
        self.write_gate: Callable[[], bool] | None = None

    @classmethod
    def from_connection_info(
        cls, info: Any, on_request: Callable[[str, str, int], None] | None = None
    ) -> KubeClient:
        headers: dict[str, str] = {}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        context: ssl.SSLContext | bool = False if info.insecure else info.as_ssl_context()
        return cls(info.server, context, headers, on_request)

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=64)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={**self._headers, "User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def writes(self) -> int:
        return sum(n for (verb, _), n in self.requests.items() if verb in WRITE_VERBS)

    async def request(
        self,
        verb: str,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        fenced: bool = True,
    ) -> dict[str, Any]:
        """One API call, retried on throttling and server errors with a short backoff.

        `fenced=False` skips the write gate: only for the leader lease itself, whose writes are how
        a replica becomes (or stops being) the one that may write."""
        resource = resource_of(path)
        data = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        session = await self._client()
        delay = 0.2
        for attempt in range(5):
            if fenced and method not in ("GET", "HEAD") and self.write_gate and not self.write_gate():
                raise WriteFenced(verb, path)
            self.requests[(verb, resource)] += 1
            try:
                async with session.request(
                    method,
                    self.server + path,
                    params=params,
                    data=data,
                    headers={"Content-Type": content_type} if data is not None else None,
                ) as response:
                    payload = _decode(await response.text())
                    if self._on_request:
                        self._on_request(verb, resource, response.status)
                    if response.status < 400:
                        return payload
                    if response.status not in RETRY_STATUSES or attempt == 4 or _malformed(payload):
                        raise ApiError(response.status, verb, path, payload)
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                if self._on_request:
                    self._on_request(verb, resource, 0)
                if attempt == 4:
                    raise ApiError(0, verb, path, {"message": f"connection failed: {exc}"}) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.request("get", "GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("list", "GET", path, params=params)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def apply(
        self, path: str, obj: dict[str, Any], field_manager: str, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply with one field manager; `force` takes fields over from other managers,
        which is what repairing drift means for the fields the operator owns. `dry_run` runs
        admission and validation without persisting anything."""
        params = {"fieldManager": field_manager, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        return await self.request(
            "dry-run" if dry_run else "apply",
            "PATCH",
            path,
            params=params,
            body=obj,
            content_type="application/apply-patch+yaml",
        )

    async def merge_patch(self, path: str, patch: dict[str, Any], verb: str = "patch") -> dict[str, Any]:
        return await self.request(
            verb, "PATCH", path, body=patch, content_type="application/merge-patch+json"
        )

    async def create(self, path: str, obj: dict[str, Any], fenced: bool = True) -> dict[str, Any]:
        return await self.request("create", "POST", path, body=obj, fenced=fenced)

    async def update(self, path: str, obj: dict[str, Any], fenced: bool = True) -> dict[str, Any]:
        """PUT: replaces the object; with metadata.resourceVersion set, a 409 means someone else
        changed it first (optimistic concurrency, what leader election relies on)."""
        return await self.request("update", "PUT", path, body=obj, fenced=fenced)

    async def delete(self, path: str, uid: str | None = None) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}  # type: ignore[assignment]
        try:
            await self.request("delete", "DELETE", path, body=body)
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
