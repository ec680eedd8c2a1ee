"""The operator's API client against a real HTTP server on loopback: retries, error bodies, a token
rotated under it, and watch streams whose events arrive split across chunks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from mimo_operator.kube.client import ApiError, KubeClient

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def error_of(url: str, call: Callable[[KubeClient], Awaitable[Any]]) -> ApiError:
    """The ApiError `call` raises with a fresh client."""
    client = KubeClient.from_connection_info(info(url, "t"))
    try:
        await call(client)
    except ApiError as exc:
        return exc
    finally:
        await client.close()
    raise AssertionError("no error raised")


def info(url: str, token: str) -> SimpleNamespace:
    return SimpleNamespace(server=url, token=token, scheme="Bearer", insecure=True)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_server_errors_are_retried_then_succeed() -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(request.method)
        if len(calls) < 3:
            return web.Response(status=503, text="busy")
        return web.json_response({"kind": "Service", "metadata": {"name": "x"}})

    async def scenario() -> dict[str, Any] | None:
        async with server(handler) as url:
            client = KubeClient.from_connection_info(info(url, "t"))
            try:
                return await client.get("/api/v1/namespaces/a/services/x")
            finally:
                await client.close()

    assert run(scenario()) == {"kind": "Service", "metadata": {"name": "x"}}
    assert calls == ["GET", "GET", "GET"]


def test_client_errors_are_not_retried_and_plain_text_bodies_are_decoded() -> None:
    calls: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        calls.append(request.path)
        return web.Response(status=422, text="404 page not found\n")

    async def scenario() -> ApiError:
        async with server(handler) as url:
            path = "/api/v1/namespaces/a/services"
            return await error_of(url, lambda c: c.create(path, {"kind": "Service"}))

    exc = run(scenario())
    assert (exc.status, exc.message) == (422, "404 page not found")
    assert len(calls) == 1


def test_a_rotated_token_is_picked_up_after_a_401() -> None:
    valid = {"token": "old"}
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        seen.append(auth)
        if auth != f"Bearer {valid['token']}":
            return web.json_response({"reason": "Unauthorized", "message": "Unauthorized"}, status=401)
        return web.json_response({"items": [], "metadata": {"resourceVersion": "5"}})

    async def scenario() -> list[dict[str, Any]]:
        async with server(handler) as url:
            logins = iter([info(url, "new")])
            client = KubeClient.from_connection_info(info(url, "old"), relogin=lambda: next(logins))
            try:
                assert await client.list("/api/v1/namespaces/a/services") == []
                valid["token"] = "new"  # the kubelet rotated the projected token
                return await client.list("/api/v1/namespaces/a/services")
            finally:
                await client.close()

    assert run(scenario()) == []
    assert seen == ["Bearer old", "Bearer old", "Bearer new"]


def test_a_401_without_fresh_credentials_is_an_error() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"reason": "Unauthorized", "message": "Unauthorized"}, status=401)

    async def scenario() -> int:
        async with server(handler) as url:
            client = KubeClient.from_connection_info(info(url, "old"), relogin=lambda: info(url, "old"))
            try:
                await client.get("/api/v1/namespaces/a/services/x")
            except ApiError as exc:
                return exc.status
            finally:
                await client.close()
        return 0

    assert run(scenario()) == 401


def test_watch_events_split_across_chunks_are_reassembled() -> None:
    big = {
        "type": "ADDED",
        "object": {"metadata": {"name": "a", "resourceVersion": "7"}, "data": "x" * 200_000},
    }
    lines = [
        json.dumps(big).encode(),
        json.dumps({"type": "DELETED", "object": {"metadata": {"name": "b"}}}).encode(),
    ]

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.query["watch"] == "true"
        assert request.query["labelSelector"] == "app=x"
        assert request.query["resourceVersion"] == "5"
        response = web.StreamResponse()
        await response.prepare(request)
        payload = b"\n".join(lines) + b"\n"
        for start in range(0, len(payload), 1000):  # small pieces: lines cross chunk borders
            await response.write(payload[start : start + 1000])
        await response.write_eof()
        return response

    async def scenario() -> list[dict[str, Any]]:
        async with server(handler) as url:
            client = KubeClient.from_connection_info(info(url, "t"))
            try:
                return [e async for e in client.watch("/api/v1/namespaces/a/services", "5", "app=x")]
            finally:
                await client.close()

    events = run(scenario())
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]
    assert events[0]["object"]["data"] == "x" * 200_000


@pytest.mark.parametrize("status", [403, 404])
def test_watch_refusals_raise_with_the_server_message(status: int) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"message": f"refused {status}"}, status=status)

    async def drain(client: KubeClient) -> None:
        async for _ in client.watch("/api/v1/namespaces/a/services", "1"):
            pass

    async def scenario() -> ApiError:
        async with server(handler) as url:
            return await error_of(url, drain)

    exc = run(scenario())
    assert (exc.status, exc.message) == (status, f"refused {status}")
