"""The controller's queue and bookkeeping: de-duplication, capped backoff, workers that survive any
one deployment's exception, stale bodies, and forgetting what a re-list no longer shows."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web

from mimo_operator.handlers import controller as controller_module
from mimo_operator.handlers.controller import Controller
from mimo_operator.handlers.reconcile import Outcome
from mimo_operator.handlers.settings import OperatorSettings
from mimo_operator.handlers.workqueue import WorkQueue, backoff_seconds
from mimo_operator.kube.client import KubeClient
from tests.unit.test_kube_client import info, server


def body(name: str, uid: str = "u1", rv: str = "1") -> dict[str, Any]:
    return {
        "apiVersion": "serving.mimo.dev/v1alpha1",
        "kind": "MimoDeployment",
        "metadata": {"namespace": "ns", "name": name, "uid": uid, "resourceVersion": rv},
    }


def settings() -> OperatorSettings:
    return OperatorSettings(namespaces=["ns"], max_backoff_seconds=300)


def test_backoff_is_capped_for_any_number_of_failures() -> None:
    assert backoff_seconds(1, 300) == 2
    assert backoff_seconds(5000, 300) == 300  # 2.0 ** 5000 would overflow


def test_a_key_failing_thousands_of_times_keeps_its_worker_alive() -> None:
    async def scenario() -> list[float]:
        ctl = Controller(settings())
        delays: list[float] = []
        loop = asyncio.get_running_loop()
        original = loop.call_later

        def record(delay: float, *args: Any) -> Any:
            delays.append(delay)
            return original(3600, *args)

        loop.call_later = record  # type: ignore[method-assign]
        try:
            for _ in range(1500):
                ctl._failed(("ns", "m"), body("m"), RuntimeError("boom"), 0.0)
        finally:
            loop.call_later = original  # type: ignore[method-assign]
        return delays

    delays = asyncio.run(scenario())
    assert len(delays) == 1500 and max(delays) == 300


def test_events_during_a_reconcile_run_it_once_more_and_duplicates_queue_once() -> None:
    async def scenario() -> list[object]:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.add("a")
        seen: list[object] = [queue.waiting()]
        taken = await queue.take()
        queue.add("a")  # an event while a worker has it: not handed to a second worker
        seen += [taken, queue.waiting()]
        queue.done("a")  # ... but handed out once more when that work is done
        seen.append(queue.waiting())
        return seen

    assert asyncio.run(scenario()) == [1, "a", 0, 1]


def test_a_stale_or_repeated_body_does_not_replace_a_newer_one() -> None:
    async def scenario() -> tuple[str, int]:
        ctl = Controller(settings())
        ctl.observe("MODIFIED", body("m", rv="20"))
        await ctl.queue.take()
        ctl.queue.done(("ns", "m"))
        ctl.observe("MODIFIED", body("m", rv="12"))  # an event still on its way when rv 20 was written
        ctl.observe(None, body("m", rv="20"))  # the same version again, from a re-list
        ctl._relist_audit.cancel()  # type: ignore[union-attr]
        return ctl.bodies[("ns", "m")]["metadata"]["resourceVersion"], ctl.queue.waiting()

    assert asyncio.run(scenario()) == ("20", 0)


def test_a_deployment_recreated_under_its_name_starts_without_the_old_failures() -> None:
    async def scenario() -> dict[str, int]:
        ctl = Controller(settings())
        ctl.observe("ADDED", body("m", uid="old"))
        ctl.failures["old"] = 7
        ctl.observe("DELETED", body("m", uid="old"))
        ctl.observe("ADDED", body("m", uid="new", rv="30"))
        return ctl.failures

    assert asyncio.run(scenario()) == {}


def test_a_worker_survives_a_programming_error_and_a_failing_callback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    async def fake_reconcile(client: Any, obj: dict[str, Any], *_: Any) -> Outcome:
        calls.append(obj["metadata"]["name"])
        if obj["metadata"]["name"] == "broken":
            raise KeyError("a bug")
        return Outcome(phase="Ready")

    def failing_callback(key: Any, outcome: Any, seconds: float) -> None:
        if outcome is not None:
            raise RuntimeError("callback bug")

    errors: list[str] = []
    monkeypatch.setattr(controller_module, "reconcile", fake_reconcile)

    async def scenario() -> None:
        ctl = Controller(settings(), on_outcome=failing_callback, on_error=errors.append)
        ctl.client = KubeClient("http://127.0.0.1:9", False, {})
        ctl._discovered_at = float("inf")
        for name in ("broken", "fine", "also-fine"):
            ctl.observe("ADDED", body(name, uid=name))
        worker = asyncio.create_task(ctl._work())
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        worker.cancel()
        assert not worker.done() or worker.cancelled()

    with caplog.at_level(logging.ERROR, logger="mimo_operator"):
        asyncio.run(scenario())
    assert calls == ["broken", "fine", "also-fine"]
    assert errors == ["internal", "internal", "internal"]  # the bug, then the callback twice
    tracebacks = [r for r in caplog.records if r.exc_info and "ns/broken" in r.getMessage()]
    assert len(tracebacks) == 1 and "KeyError" in caplog.text


def test_a_relist_forgets_deployments_that_no_longer_exist() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"items": [body("kept", uid="k")], "metadata": {"resourceVersion": "9"}})

    async def scenario() -> list[tuple[str, str]]:
        async with server(handler) as url:
            forgotten: list[tuple[str, str]] = []
            ctl = Controller(settings(), on_forget=forgotten.append)
            ctl.client = KubeClient.from_connection_info(info(url, "t"))
            ctl.observe("ADDED", body("kept", uid="k"))
            ctl.observe("ADDED", body("deleted-in-the-gap", uid="d"))
            await ctl.audit_deployments()
            await ctl.client.close()
            assert sorted(ctl.bodies) == [("ns", "kept")]
            return forgotten

    assert asyncio.run(scenario()) == [("ns", "deleted-in-the-gap")]
