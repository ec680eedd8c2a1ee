"""`make bench`: the operator at scale against the sandbox, beside the physical limit of the same cluster.

For each N in BENCH_SIZES (default 100,1000), BENCH_REPEATS times (default 3), a fresh sandbox starts
with N/2 simulated 8x H200 nodes (fp8 on H200 takes 4 GPUs, so two deployments per node and every pod
schedules) and kube-apiserver writing an audit log. Then:

1. limit: the children the operator would create for N deployments (`render_children`, owner
   references dropped) are server-side applied by a plain client with the operator's concurrency
   (its worker count); time until all exist and until all pods are Ready. The namespace is then
   deleted and its pods awaited gone.
2. operator: `mimo-operator run` as a subprocess; N MimoDeployments created at once. One client-side
   watch per kind stamps every event on receipt, so a deployment's creation (its ADDED event), its
   StatefulSet's creation and its phase Ready are all timed the same way. CPU seconds and peak RSS
   from /proc/<pid>/stat and /proc/<pid>/status (VmHWM).
3. idle: BENCH_IDLE_SECONDS (default 300) with nothing changing.

API requests are counted by the API server, not by the operator: its audit log records every request
of the admin user at receipt (one event per request, a watch once when it is opened) with the client's
user agent. The operator's are those of `mimo-operator/*` (its own client) and `kopf/*` (kopf's
watches and lists); the bench's own client sends `mimo-bench`. kube-apiserver's
`apiserver_request_total` metric has no user-agent label, so it cannot tell them apart.

Prints the median and the spread (min-max) of every figure over the repeats and writes every run to
bench-results/bench-<time>.json (or BENCH_OUTPUT). Environment: BENCH_SIZES, BENCH_REPEATS,
BENCH_IDLE_SECONDS, BENCH_WORKERS (operator workers and the limit's concurrency, default 8),
BENCH_OUTPUT.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.kube.resources import kind_of
from mimo_operator.models.gpus import GPU_CATALOG
from mimo_operator.render import RenderConfig, plan_for, render_children
from mimo_sandbox.cluster import Sandbox, wait_until
from mimo_sandbox.pools import NodePool
from tests.integration.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "mimodeployments.serving.mimo.dev.yaml"
RESULTS = ROOT / "bench-results"
GROUP_VERSION = "serving.mimo.dev/v1alpha1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Audit verbs that change state (server-side apply is a `patch`).
WRITE_VERBS = ("create", "patch", "update", "delete", "deletecollection")
BENCH_AGENT = "mimo-bench"
# User agents of the operator process: its own client (kube/client.py USER_AGENT) and kopf's
# (kopf/_cogs/clients/auth.py sets `kopf/<version>`).
OPERATOR_AGENTS = ("mimo-operator/", "kopf/")
# Every request of the admin user (the bench, the operator and kubectl all use the sandbox's admin
# kubeconfig) at receipt, nothing else: the components' own traffic would only make the file big.
# https://kubernetes.io/docs/tasks/debug/debug-cluster/audit/ (Policy, stages, levels)
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [ResponseStarted, ResponseComplete, Panic]
rules:
- level: Metadata
  users: [admin]
- level: None
"""


def mimo(name: str) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "MimoDeployment",
        "metadata": {"name": name},
        "spec": {"precision": "fp8", "gpu": {"type": "H200-141GB"}},
    }


def names(n: int) -> list[str]:
    return [f"mimo-{i:04d}" for i in range(n)]


# ---- process accounting -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def memory_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def component_cpu(sb: Sandbox) -> dict[str, float]:
    return {c.name: cpu_seconds(c.pid) for c in sb.status() if c.pid and c.running}


def cpu_delta(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, float]:
    """CPU seconds per component in a phase, and the phase's wall time."""
    delta = {k: round(after[k] - before.get(k, 0.0), 1) for k in after}
    delta["wall_s"] = round(wall, 1)
    return delta


def component_usage(sb: Sandbox) -> dict[str, dict[str, float]]:
    usage = {}
    for comp in sb.status():
        if comp.pid and comp.running:
            usage[comp.name] = {
                "cpu_s": round(cpu_seconds(comp.pid), 1),
                "rss_mib": round(memory_mib(comp.pid, "VmRSS")),
                "peak_rss_mib": round(memory_mib(comp.pid, "VmHWM")),
            }
    return usage


# ---- a small async client with the sandbox admin's certificate --------------------------------------


class Api:
    def __init__(self, sb: Sandbox) -> None:
        kubeconfig = yaml.safe_load(sb.kubeconfig.read_text())
        self.server = kubeconfig["clusters"][0]["cluster"]["server"]
        user = kubeconfig["users"][0]["user"]
        self._tmp = tempfile.TemporaryDirectory(prefix="mimo-bench-")
        paths = {}
        for key, data in (
            ("ca", kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]),
            ("cert", user["client-certificate-data"]),
            ("key", user["client-key-data"]),
        ):
            paths[key] = Path(self._tmp.name) / key
            paths[key].write_bytes(base64.b64decode(data))
        self.ssl = ssl.create_default_context(cafile=str(paths["ca"]))
        self.ssl.load_cert_chain(str(paths["cert"]), str(paths["key"]))
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl, limit=256),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            headers={"User-Agent": BENCH_AGENT},  # told apart from the operator's in the audit log
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.session is not None
        await self.session.close()
        self._tmp.cleanup()

    async def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> Any:
        assert self.session is not None
        data = None if body is None else json.dumps(body)
        for attempt in range(8):
            async with self.session.request(
                method, self.server + path, data=data, headers={"Content-Type": content_type}
            ) as resp:
                payload = await resp.text()
                if resp.status < 400:
                    return json.loads(payload) if payload else {}
                if resp.status not in (409, 429, 500, 503, 504) or attempt == 7:
                    raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]}")
            await asyncio.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    async def watch(self, path: str, on_event: Any, stop: asyncio.Event) -> None:
        """Stream watch events of a collection (from now) into `on_event(type, object, monotonic)`."""
        assert self.session is not None
        listed = await self.call("GET", path + "?limit=1")
        rv = listed["metadata"]["resourceVersion"]
        while not stop.is_set():
            query = f"watch=1&allowWatchBookmarks=true&resourceVersion={rv}&timeoutSeconds=600"
            url = f"{self.server}{path}?{query}"
            async with self.session.get(url) as resp:
                async for line in resp.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        on_event(event["type"], obj, time.monotonic())
                    if stop.is_set():
                        return


async def run_bounded(jobs: list[Any], limit: int) -> None:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Any) -> None:
        async with semaphore:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# ---- the API server's own count of requests ---------------------------------------------------------


class AuditLog:
    """kube-apiserver's audit log (AUDIT_POLICY: one event per request of the admin user, at receipt).

    The log backend writes in blocking mode by default (--audit-log-mode), so a request's event is in
    the file before the request is served: the file's size at a moment splits requests into before
    and after it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The offset just past the last complete line: a split between two requests, never inside one."""
        if not self.path.exists():
            return 0
        with self.path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - (1 << 20)))
            tail = fh.read()
        return size - len(tail) + tail.rfind(b"\n") + 1

    def requests(self, start: int, end: int, agents: tuple[str, ...]) -> dict[str, float]:
        """Requests between two marks from clients whose user agent starts with one of `agents`,
        by "verb resource[/subresource]" (a non-resource request by its path)."""
        counts: dict[str, float] = {}
        with self.path.open("rb") as fh:
            fh.seek(start)
            chunk = fh.read(end - start)
        for line in chunk.splitlines():
            event = json.loads(line)
            if event.get("stage") != "RequestReceived":
                continue
            if not str(event.get("userAgent", "")).startswith(agents):
                continue
            ref = event.get("objectRef") or {}
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            key = f"{event['verb']} {ref.get('resource', event.get('requestURI', '?'))}{sub}"
            counts[key] = counts.get(key, 0) + 1
        return counts


def writes(by_verb: dict[str, float]) -> float:
    return sum(v for k, v in by_verb.items() if k.split()[0] in WRITE_VERBS)


# ---- the phases ---------------------------------------------------------------------------------------


@dataclass
class Result:
    """One run of one size. Request counts come from the audit log, latencies from watch receipt."""

    n: int
    nodes: int
    workers: int
    run: int = 1
    sandbox_start_s: float = 0.0
    limit_children_s: float = 0.0
    limit_ready_s: float = 0.0
    limit_requests: float = 0.0
    operator_children_s: float = 0.0
    operator_ready_s: float = 0.0
    create_s: float = 0.0
    children_p50_s: float = 0.0
    children_p99_s: float = 0.0
    ready_p50_s: float = 0.0
    ready_p99_s: float = 0.0
    reconciles: float = 0.0
    requests: float = 0.0
    requests_per_reconcile: float = 0.0
    writes: float = 0.0
    startup_requests: float = 0.0
    startup_requests_by_verb: dict[str, float] = field(default_factory=dict)
    requests_by_verb: dict[str, float] = field(default_factory=dict)
    idle_seconds: float = 0.0
    idle_requests: float = 0.0
    idle_writes: float = 0.0
    idle_requests_by_verb: dict[str, float] = field(default_factory=dict)
    operator_cpu_converge_s: float = 0.0
    operator_cpu_idle_s: float = 0.0
    operator_peak_rss_mib: float = 0.0
    components: dict[str, Any] = field(default_factory=dict)
    cpu_limit_phase: dict[str, float] = field(default_factory=dict)
    cpu_operator_phase: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.limit_children_s / self.operator_children_s if self.operator_children_s else 0.0


def reconciles(op: OperatorProcess) -> float:
    return sum(v for k, v in op.metrics().items() if k.startswith("mimo_operator_reconciles_total{"))


async def pods_ready(api: Api, ns: str, n: int) -> bool:
    pods = (await api.call("GET", f"/api/v1/namespaces/{ns}/pods"))["items"]
    ready = [
        p
        for p in pods
        if any(
            c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", [])
        )
    ]
    return len(ready) >= n


async def limit_phase(sb: Sandbox, api: Api, audit: AuditLog, n: int, workers: int, result: Result) -> None:
    """The same children, applied by a plain client with the same concurrency: what the cluster allows."""
    ns = "bench-limit"
    await api.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    await asyncio.sleep(2)  # the ServiceAccount admission needs `default` before pods exist
    objects = []
    for name in names(n):
        body = mimo(name)
        body["metadata"].update({"namespace": ns, "uid": str(uuid.uuid4())})
        md = parse_mimo_deployment(body)
        plan = plan_for(md.spec)
        for child in render_children(md, plan, RenderConfig()):  # type: ignore[arg-type]
            child["metadata"].pop("ownerReferences", None)  # no owner exists: the GC would delete them
            objects.append(child)

    async def put(obj: dict[str, Any]) -> None:
        # The operator's own table of REST paths: every kind render_children makes is in it.
        path = kind_of(obj).item(ns, obj["metadata"]["name"])
        await api.call(
            "PATCH", path + "?fieldManager=bench&force=true", obj, content_type="application/apply-patch+yaml"
        )

    cpu0 = component_cpu(sb)
    mark0 = audit.mark()
    t0 = time.monotonic()
    await run_bounded([put(o) for o in objects], workers)
    result.limit_children_s = time.monotonic() - t0
    result.cpu_limit_phase = cpu_delta(cpu0, component_cpu(sb), result.limit_children_s)
    # Retries (409, 429, 5xx) included: the API server counts what arrived.
    result.limit_requests = sum(audit.requests(mark0, audit.mark(), (BENCH_AGENT,)).values())
    while not await pods_ready(api, ns, n):
        await asyncio.sleep(0.5)
    result.limit_ready_s = time.monotonic() - t0
    print(
        f"  limit: {len(objects)} children in {result.limit_children_s:.1f}s, "
        f"pods Ready at {result.limit_ready_s:.1f}s"
    )
    await api.call("DELETE", f"/api/v1/namespaces/{ns}")
    while (await api.call("GET", f"/api/v1/namespaces/{ns}/pods"))["items"]:
        await asyncio.sleep(1)


async def operator_phase(
    sb: Sandbox, api: Api, audit: AuditLog, n: int, workers: int, idle: float, result: Result
) -> None:
    ns = "bench"
    await api.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    await asyncio.sleep(2)
    log_dir = Path(tempfile.mkdtemp(prefix="mimo-bench-op-"))
    os.environ["MIMO_OPERATOR_WORKERS"] = str(workers)
    mark_start = audit.mark()
    op = OperatorProcess(sb, ns, log_dir).start()
    assert op.proc is not None
    pid = op.proc.pid
    try:
        # Every stamp is a watch event's receipt by this process: creation, children and Ready are
        # measured the same way, so the watch's own delay cancels out of each latency.
        created: dict[str, float] = {}
        children_at: dict[str, float] = {}
        ready_at: dict[str, float] = {}
        stop = asyncio.Event()
        all_children, all_ready = asyncio.Event(), asyncio.Event()

        def on_sts(kind: str, obj: dict[str, Any], at: float) -> None:
            if kind == "ADDED":
                children_at.setdefault(obj["metadata"]["name"], at)
            if len(children_at) >= n:
                all_children.set()

        def on_mimo(kind: str, obj: dict[str, Any], at: float) -> None:
            name = obj["metadata"]["name"]
            if kind == "ADDED":
                created.setdefault(name, at)
            if (obj.get("status") or {}).get("phase") == "Ready":
                ready_at.setdefault(name, at)
                if len(ready_at) >= n:
                    all_ready.set()

        watches = [
            asyncio.create_task(api.watch(f"/apis/apps/v1/namespaces/{ns}/statefulsets", on_sts, stop)),
            asyncio.create_task(
                api.watch(f"/apis/{GROUP_VERSION}/namespaces/{ns}/mimodeployments", on_mimo, stop)
            ),
        ]
        await asyncio.sleep(1)
        cpu0, reconciles0 = cpu_seconds(pid), reconciles(op)
        components0 = component_cpu(sb)
        mark0 = audit.mark()
        # What starting costs (kopf's initial lists and watches, discovery), before any deployment.
        result.startup_requests_by_verb = audit.requests(mark_start, mark0, OPERATOR_AGENTS)
        result.startup_requests = sum(result.startup_requests_by_verb.values())

        async def create(name: str) -> None:
            await api.call("POST", f"/apis/{GROUP_VERSION}/namespaces/{ns}/mimodeployments", mimo(name))

        t0 = time.monotonic()
        await run_bounded([create(name) for name in names(n)], 32)
        result.create_s = time.monotonic() - t0
        await asyncio.wait_for(all_children.wait(), timeout=1800)
        result.operator_children_s = time.monotonic() - t0
        result.cpu_operator_phase = cpu_delta(
            {**components0, "operator": cpu0},
            {**component_cpu(sb), "operator": cpu_seconds(pid)},
            result.operator_children_s,
        )
        await asyncio.wait_for(all_ready.wait(), timeout=3600)
        result.operator_ready_s = time.monotonic() - t0
        await asyncio.sleep(5)  # trailing status writes
        lat = [children_at[k] - created[k] for k in created]
        ready = [ready_at[k] - created[k] for k in created]
        result.children_p50_s, result.children_p99_s = percentile(lat, 50), percentile(lat, 99)
        result.ready_p50_s, result.ready_p99_s = percentile(ready, 50), percentile(ready, 99)
        mark1 = audit.mark()
        result.requests_by_verb = audit.requests(mark0, mark1, OPERATOR_AGENTS)
        result.requests = sum(result.requests_by_verb.values())
        result.writes = writes(result.requests_by_verb)
        result.reconciles = reconciles(op) - reconciles0
        result.requests_per_reconcile = result.requests / result.reconciles if result.reconciles else 0
        cpu1 = cpu_seconds(pid)
        result.operator_cpu_converge_s = cpu1 - cpu0
        print(
            f"  operator: children {result.operator_children_s:.1f}s, Ready {result.operator_ready_s:.1f}s, "
            f"{result.reconciles:.0f} reconciles, {result.requests:.0f} requests; idle {idle:.0f}s ..."
        )

        result.idle_seconds = idle
        await asyncio.sleep(idle)
        result.idle_requests_by_verb = audit.requests(mark1, audit.mark(), OPERATOR_AGENTS)
        result.idle_requests = sum(result.idle_requests_by_verb.values())
        result.idle_writes = writes(result.idle_requests_by_verb)
        result.operator_cpu_idle_s = cpu_seconds(pid) - cpu1
        result.operator_peak_rss_mib = memory_mib(pid, "VmHWM")
        result.components = component_usage(sb)
        stop.set()
        for task in watches:
            task.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
    finally:
        op.kill()
        print(f"  operator log: {op.log_path}")


def pools_for(n: int) -> list[NodePool]:
    # Two fp8 deployments (4 GPUs each) per 8x H200 node: every pod can schedule.
    return [
        NodePool(
            name="h200",
            gpu=GPU_CATALOG["H200-141GB"],
            count=(n + 1) // 2,
            gpus_per_node=8,
            cpu="192",
            memory="1536Gi",
            pods=110,
        )
    ]


async def bench_one(n: int, workers: int, idle: float, run: int) -> Result:
    pools = pools_for(n)
    result = Result(n=n, nodes=pools[0].count, workers=workers, run=run)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mimo-bench-audit-") as policy_dir:
        policy = Path(policy_dir) / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        sb = Sandbox(pools=pools, startup_timeout=900, audit_policy=policy)
        sb.start()
        try:
            result.sandbox_start_s = time.monotonic() - t0
            print(f"N={n} run {run}: sandbox with {result.nodes} nodes up in {result.sandbox_start_s:.0f}s")
            sb.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
            sb.kubectl(
                "wait", "--for=condition=Established", "--timeout=60s", "crd/mimodeployments.serving.mimo.dev"
            )
            wait_until(
                lambda: sb.kubectl("get", "mimodeployments", "-A", check=False).returncode == 0,
                timeout=30,
                description="mimodeployments served",
            )
            audit = AuditLog(sb.audit_log)
            async with Api(sb) as api:
                await limit_phase(sb, api, audit, n, workers, result)
                await operator_phase(sb, api, audit, n, workers, idle, result)
        finally:
            sb.stop()
    return result


# ---- the report: median and spread over the repeats of each size --------------------------------------

Figure = Callable[[Result], float]


def _cpu(phase: str, component: str) -> Figure:
    return lambda r: float(getattr(r, phase).get(component, 0.0))


def _component(name: str, key: str) -> Figure:
    return lambda r: float(r.components.get(name, {}).get(key, 0.0))


# (label, figure, format of one value)
ROWS: list[tuple[str, Figure, str]] = [
    ("limit: all children (plain client)", lambda r: r.limit_children_s, "{:.1f} s"),
    ("limit: all pods Ready", lambda r: r.limit_ready_s, "{:.1f} s"),
    ("limit: API requests", lambda r: r.limit_requests, "{:.0f}"),
    ("operator start: API requests", lambda r: r.startup_requests, "{:.0f}"),
    ("creating the N MimoDeployments", lambda r: r.create_s, "{:.1f} s"),
    ("operator: all have children", lambda r: r.operator_children_s, "{:.1f} s"),
    ("operator: all Ready", lambda r: r.operator_ready_s, "{:.1f} s"),
    ("throughput operator/limit", lambda r: r.ratio * 100, "{:.0f}%"),
    ("create->children p50", lambda r: r.children_p50_s, "{:.2f} s"),
    ("create->children p99", lambda r: r.children_p99_s, "{:.2f} s"),
    ("create->Ready p50", lambda r: r.ready_p50_s, "{:.2f} s"),
    ("create->Ready p99", lambda r: r.ready_p99_s, "{:.2f} s"),
    ("reconciles", lambda r: r.reconciles, "{:.0f}"),
    ("API requests per reconcile", lambda r: r.requests_per_reconcile, "{:.2f}"),
    ("API requests per deployment", lambda r: r.requests / r.n, "{:.1f}"),
    ("API writes per deployment", lambda r: r.writes / r.n, "{:.1f}"),
    ("idle: requests", lambda r: r.idle_requests, "{:.0f}"),
    ("idle: writes", lambda r: r.idle_writes, "{:.0f}"),
    ("operator CPU converging", lambda r: r.operator_cpu_converge_s, "{:.1f} s"),
    ("operator CPU idle", lambda r: r.operator_cpu_idle_s, "{:.1f} s"),
    ("operator peak RSS", lambda r: r.operator_peak_rss_mib, "{:.0f} MiB"),
    ("limit phase CPU kube-apiserver", _cpu("cpu_limit_phase", "kube-apiserver"), "{:.1f} s"),
    ("limit phase CPU etcd", _cpu("cpu_limit_phase", "etcd"), "{:.1f} s"),
    ("operator phase CPU kube-apiserver", _cpu("cpu_operator_phase", "kube-apiserver"), "{:.1f} s"),
    ("operator phase CPU etcd", _cpu("cpu_operator_phase", "etcd"), "{:.1f} s"),
    ("operator phase CPU operator", _cpu("cpu_operator_phase", "operator"), "{:.1f} s"),
    ("kube-apiserver CPU total", _component("kube-apiserver", "cpu_s"), "{:.0f} s"),
    ("kube-apiserver peak RSS", _component("kube-apiserver", "peak_rss_mib"), "{:.0f} MiB"),
    ("etcd peak RSS", _component("etcd", "peak_rss_mib"), "{:.0f} MiB"),
]


def spread(values: list[float], fmt: str) -> str:
    """`median (min-max)`, or the value alone for a single run."""
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values)).split()[0]}-{fmt.format(max(values)).split()[0]})"


def summary(runs: list[Result]) -> dict[str, dict[str, float]]:
    """Per row: median, min and max over the runs (what the JSON keeps beside the runs themselves)."""
    out = {}
    for label, figure, _ in ROWS:
        values = [figure(r) for r in runs]
        out[label] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


def table(by_size: dict[int, list[Result]]) -> str:
    sizes = sorted(by_size)
    header = [("deployments (N)", [f"N={n}" for n in sizes])]
    header.append(("simulated 8x H200 nodes", [str(by_size[n][0].nodes) for n in sizes]))
    header.append(("runs", [str(len(by_size[n])) for n in sizes]))
    body = [
        (label, [spread([figure(r) for r in by_size[n]], fmt) for n in sizes]) for label, figure, fmt in ROWS
    ]
    rows = header + body
    width = max(len(label) for label, _ in rows)
    cell = max(22, *(len(v) for _, values in rows for v in values))
    lines = [f"{label:{width}}  " + "  ".join(f"{v:>{cell}}" for v in values) for label, values in rows]
    return "\n".join(lines) + "\n(median over the runs, min-max in brackets)"


def main() -> int:
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "100,1000").split(",") if s.strip()]
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    idle = float(os.environ.get("BENCH_IDLE_SECONDS", "300"))
    workers = int(os.environ.get("BENCH_WORKERS", "8"))
    by_size: dict[int, list[Result]] = {}
    RESULTS.mkdir(exist_ok=True)
    out = Path(os.environ.get("BENCH_OUTPUT") or RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json")
    for n in sizes:
        for run in range(1, repeats + 1):
            by_size.setdefault(n, []).append(asyncio.run(bench_one(n, workers, idle, run)))
            write(out, sizes, repeats, idle, workers, by_size)
        print(table(by_size))
    print(f"\n{table(by_size)}\n\nwrote {out}")
    return 0


def write(
    out: Path, sizes: list[int], repeats: int, idle: float, workers: int, by_size: dict[int, list[Result]]
) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "sizes": sizes,
                "repeats": repeats,
                "idle_seconds": idle,
                "workers": workers,
                "cpus": os.cpu_count(),
                "request_counting": "kube-apiserver audit log, user agents " + ", ".join(OPERATOR_AGENTS),
                "latency_stamps": "client watch receipt (ADDED MimoDeployment, ADDED StatefulSet, Ready)",
                "summary": {str(n): summary(runs) for n, runs in by_size.items()},
                "results": [{**asdict(r), "ratio": r.ratio} for runs in by_size.values() for r in runs],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
