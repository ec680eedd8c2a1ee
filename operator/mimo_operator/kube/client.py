"""A small asyncio client for the Kubernetes API, used for every request the operator's own code makes
(kopf sends its own for the MimoDeployment watch and login).

It uses the credentials kopf logged in with (`kopf.ConnectionInfo`) and follows them when they change:
kopf logs in again after its own 401, and a 401 of ours asks for a fresh login before one retry, so a
rotated service-account token never leaves the operator locked out. It keeps one connection pool for the
process and counts every request by verb and resource so tests and metrics can prove what a reconcile
cost (a no-op reconcile must make no writes).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

logger = logging.getLogger(__name__)

# Lets audit logs and tests tell the operator's requests from anyone else's.
USER_AGENT = "mimo-operator/0.1.0"
WRITE_VERBS = frozenset({"create", "apply", "patch", "update", "delete"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A watch the server ends after this long is simply resumed from the last resourceVersion.
WATCH_TIMEOUT_SECONDS = 300


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


def _auth_headers(info: Any) -> dict[str, str]:
    return {"Authorization": f"{info.scheme or 'Bearer'} {info.token}"} if info.token else {}


def _ssl_of(info: Any) -> ssl.SSLContext | bool:
    return False if info.insecure else info.as_ssl_context()


class WriteFenced(Exception):
    """A write refused before it was sent: this replica may not write (it is not, or no longer
    surely, the leader; see kube/lease.py). Not an ApiError: the API server never saw it."""

    def __init__(self, verb: str, path: str) -> None:
        super().__init__(f"{verb} {path}: refused locally, this replica does not hold the leader lease")


class KubeClient:
    """Async REST client; construct with `from_connection_info()` and close with `close()`.

    `relogin`, when given, returns fresh credentials (a `kopf.ConnectionInfo`) after a 401."""

    def __init__(
        self,
        server: str,
        ssl_context: ssl.SSLContext | bool,
        headers: dict[str, str],
        on_request: Callable[[str, str, int], None] | None = None,
        relogin: Callable[[], Any] | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl_context
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        self._retired: list[aiohttp.ClientSession] = []
        self.requests: Counter[tuple[str, str]] = Counter()
        self._on_request = on_request
        self._relogin = relogin
        # With leader election: asked before every request that is not a read, including each
        # retry, so a replica that lost (or may have lost) its lease sends nothing that changes state.
        self.write_gate: Callable[[], bool] | None = None

    @classmethod
    def from_connection_info(
        cls,
        info: Any,
        on_request: Callable[[str, str, int], None] | None = None,
        relogin: Callable[[], Any] | None = None,
    ) -> KubeClient:
        return cls(info.server, _ssl_of(info), _auth_headers(info), on_request, relogin)

    def use_credentials(self, info: Any) -> None:
        """Send later requests with these credentials (a rotated token, a renewed certificate)."""
        self._headers = _auth_headers(info)
        context = _ssl_of(info)
        if context is not self._ssl or info.server.rstrip("/") != self.server:
            self.server = info.server.rstrip("/")
            self._ssl = context
            if self._session is not None:
                # Requests in flight finish on the old pool; it is closed with the client.
                self._retired.append(self._session)
                self._session = None

    def _refresh_credentials(self) -> bool:
        """After a 401: log in again; True when that produced credentials to retry with."""
        if self._relogin is None:
            return False
        try:
            info = self._relogin()
        except Exception as exc:  # a login that fails is reported by the 401 that caused it
            logger.warning("logging in again after a 401 failed: %s", exc)
            return False
        if info is None:
            return False
        before = dict(self._headers)
        self.use_credentials(info)
        return self._headers != before or self._session is None

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=64)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self._session

    async def close(self) -> None:
        for session in [*self._retired, self._session]:
            if session is not None:
                await session.close()

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
        delay = 0.2
        relogged = False
        for attempt in range(5):
            if fenced and method not in ("GET", "HEAD") and self.write_gate and not self.write_gate():
                raise WriteFenced(verb, path)
            self.requests[(verb, resource)] += 1
            session = await self._client()
            headers = dict(self._headers)
            if data is not None:
                headers["Content-Type"] = content_type
            try:
                async with session.request(
                    method, self.server + path, params=params, data=data, headers=headers
                ) as response:
                    payload = _decode(await response.text())
                    if self._on_request:
                        self._on_request(verb, resource, response.status)
                    if response.status < 400:
                        return payload
                    if response.status == 401 and not relogged and self._refresh_credentials():
                        relogged = True
                        continue  # the same request once more, with the fresh credentials
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

    async def watch(
        self, path: str, resource_version: str, label_selector: str | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one WATCH request from `resource_version`, until the server ends it
        (after WATCH_TIMEOUT_SECONDS) or the connection breaks (aiohttp's error propagates). An
        expired resourceVersion arrives as an ERROR event with code 410: the caller lists again."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        resource = resource_of(path)
        for relogged in (False, True):
            self.requests[("watch", resource)] += 1
            session = await self._client()
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=WATCH_TIMEOUT_SECONDS + 30)
            async with session.get(
                self.server + path, params=params, headers=dict(self._headers), timeout=timeout
            ) as response:
                if self._on_request:
                    self._on_request("watch", resource, response.status)
                if response.status == 401 and not relogged and self._refresh_credentials():
                    continue
                if response.status >= 400:
                    raise ApiError(response.status, "watch", path, _decode(await response.text()))
                buffer = b""
                # Objects can be larger than aiohttp's line limit: split the stream ourselves.
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
                return

    async def list_with_version(
        self, path: str, label_selector: str | None = None
    ) -> tuple[list[dict[str, Any]], str]:
        """The items and the list's resourceVersion, to start a watch from."""
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("list", "GET", path, params=params)
        return result.get("items", []), str(result.get("metadata", {}).get("resourceVersion", ""))

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self.request("get", "GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, path: str, label_selector: str | None = None) -> list[dict[str, Any]]:
        items, _ = await self.list_with_version(path, label_selector)
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
