"""`make bench`: the operator at scale against the sandbox, beside the physical limit of the same cluster.

For each N in BENCH_SIZES (default 100,1000) a fresh sandbox starts with N/2 simulated 8x H200 nodes
(fp8 on H200 takes 4 GPUs, so two deployments per node and every pod schedules). Then:

1. limit: the children the operator would create for N deployments (`render_children`, owner
   references dropped) are server-side applied by a plain client with the operator's concurrency
   (its worker count); time until all exist and until all pods are Ready. The namespace is then
   deleted and its pods awaited gone.
2. operator: `mimo-operator run` as a subprocess; N MimoDeployments created at once; client-side
   watch timestamps give, per deployment, create -> StatefulSet seen and create -> phase Ready.
   API requests per reconcile come from the operator's own metrics; CPU seconds and peak RSS from
   /proc/<pid>/stat and /proc/<pid>/status (VmHWM).
3. idle: BENCH_IDLE_SECONDS (default 300) with nothing changing; every request the operator sends
   is counted (the watches are long-lived streams and count once, when opened).

Prints a table and writes bench-results/bench-<time>.json. Environment: BENCH_SIZES, BENCH_IDLE_SECONDS,
BENCH_WORKERS (operator workers and the limit's concurrency, default 8).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.models.gpus import GPU_CATALOG
from mimo_operator.render import RenderConfig, plan_for, render_children
from mimo_operator.sandbox.cluster import Sandbox, wait_until
from mimo_operator.sandbox.pools import NodePool
from tests.integration.operator_process import OperatorProcess

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "mimodeployments.serving.mimo.dev.yaml"
RESULTS = ROOT / "bench-results"
GROUP_VERSION = "serving.mimo.dev/v1alpha1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WRITE_VERBS = ("apply", "patch", "create", "delete", "update")


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


# ---- the phases ---------------------------------------------------------------------------------------


@dataclass
class Result:
    n: int
    nodes: int
    workers: int
    sandbox_start_s: float = 0.0
    limit_children_s: float = 0.0
    limit_ready_s: float = 0.0
    limit_requests: int = 0
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


def requests_by_verb(op: OperatorProcess) -> dict[str, float]:
    counts: dict[str, float] = {}
    for name, value in op.metrics().items():
        if name.startswith("mimo_operator_api_requests_total{"):
            verb = name.split('verb="', 1)[1].split('"', 1)[0]
            resource = name.split('resource="', 1)[1].split('"', 1)[0]
            counts[f"{verb} {resource}"] = counts.get(f"{verb} {resource}", 0) + value
    return counts


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


async def limit_phase(sb: Sandbox, api: Api, n: int, workers: int, result: Result) -> None:
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
    paths = {
        "StatefulSet": "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}",
        "Service": "/api/v1/namespaces/{ns}/services/{name}",
    }
    counter = {"n": 0}

    async def put(obj: dict[str, Any]) -> None:
        path = paths[obj["kind"]].format(ns=ns, name=obj["metadata"]["name"])
        counter["n"] += 1
        await api.call(
            "PATCH", path + "?fieldManager=bench&force=true", obj, content_type="application/apply-patch+yaml"
        )

    cpu0 = component_cpu(sb)
    t0 = time.monotonic()
    await run_bounded([put(o) for o in objects], workers)
    result.limit_children_s = time.monotonic() - t0
    result.cpu_limit_phase = cpu_delta(cpu0, component_cpu(sb), result.limit_children_s)
    result.limit_requests = counter["n"]
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


async def operator_phase(sb: Sandbox, api: Api, n: int, workers: int, idle: float, result: Result) -> None:
    ns = "bench"
    await api.call(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    await asyncio.sleep(2)
    log_dir = Path(tempfile.mkdtemp(prefix="mimo-bench-op-"))
    os.environ["MIMO_OPERATOR_WORKERS"] = str(workers)
    op = OperatorProcess(sb, ns, log_dir).start()
    assert op.proc is not None
    pid = op.proc.pid
    try:
        created: dict[str, float] = {}
        children_at: dict[str, float] = {}
        ready_at: dict[str, float] = {}
        stop = asyncio.Event()
        all_children, all_ready = asyncio.Event(), asyncio.Event()

        def on_sts(kind: str, obj: dict[str, Any], at: float) -> None:
            children_at.setdefault(obj["metadata"]["name"], at)
            if len(children_at) >= n:
                all_children.set()

        def on_mimo(kind: str, obj: dict[str, Any], at: float) -> None:
            if (obj.get("status") or {}).get("phase") == "Ready":
                ready_at.setdefault(obj["metadata"]["name"], at)
                if len(ready_at) >= n:
                    all_ready.set()

        watches = [
            asyncio.create_task(api.watch(f"/apis/apps/v1/namespaces/{ns}/statefulsets", on_sts, stop)),
            asyncio.create_task(
                api.watch(f"/apis/{GROUP_VERSION}/namespaces/{ns}/mimodeployments", on_mimo, stop)
            ),
        ]
        await asyncio.sleep(1)
        cpu0, requests0, reconciles0 = cpu_seconds(pid), requests_by_verb(op), reconciles(op)
        components0 = component_cpu(sb)

        async def create(name: str) -> None:
            await api.call("POST", f"/apis/{GROUP_VERSION}/namespaces/{ns}/mimodeployments", mimo(name))
            created[name] = time.monotonic()

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
        after = requests_by_verb(op)
        result.requests_by_verb = {
            k: v - requests0.get(k, 0) for k, v in after.items() if v - requests0.get(k, 0)
        }
        result.requests = sum(result.requests_by_verb.values())
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
        idle_after = requests_by_verb(op)
        result.idle_requests_by_verb = {
            k: v - after.get(k, 0) for k, v in idle_after.items() if v - after.get(k, 0)
        }
        result.idle_requests = sum(result.idle_requests_by_verb.values())
        result.idle_writes = sum(
            v for k, v in result.idle_requests_by_verb.items() if k.split()[0] in WRITE_VERBS
        )
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


async def bench_one(n: int, workers: int, idle: float) -> Result:
    pools = pools_for(n)
    result = Result(n=n, nodes=pools[0].count, workers=workers)
    t0 = time.monotonic()
    sb = Sandbox(pools=pools, startup_timeout=900)
    sb.start()
    try:
        result.sandbox_start_s = time.monotonic() - t0
        print(f"N={n}: sandbox with {result.nodes} nodes up in {result.sandbox_start_s:.0f}s")
        sb.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        sb.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/mimodeployments.serving.mimo.dev"
        )
        wait_until(
            lambda: sb.kubectl("get", "mimodeployments", "-A", check=False).returncode == 0,
            timeout=30,
            description="mimodeployments served",
        )
        async with Api(sb) as api:
            await limit_phase(sb, api, n, workers, result)
            await operator_phase(sb, api, n, workers, idle, result)
    finally:
        sb.stop()
    return result


def table(results: list[Result]) -> str:
    rows = [
        ("deployments (N)", lambda r: f"{r.n}"),
        ("simulated 8x H200 nodes", lambda r: f"{r.nodes}"),
        ("limit: all children (plain client)", lambda r: f"{r.limit_children_s:.1f} s"),
        ("limit: all pods Ready", lambda r: f"{r.limit_ready_s:.1f} s"),
        ("creating the N MimoDeployments", lambda r: f"{r.create_s:.1f} s"),
        ("operator: all have children", lambda r: f"{r.operator_children_s:.1f} s"),
        ("operator: all Ready", lambda r: f"{r.operator_ready_s:.1f} s"),
        ("throughput operator/limit", lambda r: f"{r.ratio:.0%}"),
        ("create->children p50 / p99", lambda r: f"{r.children_p50_s:.2f} / {r.children_p99_s:.2f} s"),
        ("create->Ready p50 / p99", lambda r: f"{r.ready_p50_s:.2f} / {r.ready_p99_s:.2f} s"),
        ("reconciles", lambda r: f"{r.reconciles:.0f}"),
        ("API requests per reconcile", lambda r: f"{r.requests_per_reconcile:.2f}"),
        ("API requests per deployment", lambda r: f"{r.requests / r.n:.1f}"),
        (
            "idle: requests / writes",
            lambda r: f"{r.idle_requests:.0f} / {r.idle_writes:.0f} in {r.idle_seconds:.0f} s",
        ),
        (
            "operator CPU: converge / idle",
            lambda r: f"{r.operator_cpu_converge_s:.1f} / {r.operator_cpu_idle_s:.1f} s",
        ),
        ("operator peak RSS", lambda r: f"{r.operator_peak_rss_mib:.0f} MiB"),
        ("limit phase CPU apiserver/etcd", lambda r: _phase(r.cpu_limit_phase)),
        ("operator phase CPU apiserver/etcd/op", lambda r: _phase(r.cpu_operator_phase)),
        ("kube-apiserver CPU / peak RSS", lambda r: _comp(r, "kube-apiserver")),
        ("etcd CPU / peak RSS", lambda r: _comp(r, "etcd")),
        ("kwok CPU / peak RSS", lambda r: _comp(r, "kwok")),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{'N=' + str(r.n):>22}" for r in results)]
    for label, fmt in rows:
        lines.append(f"{label:{width}}  " + "  ".join(f"{fmt(r):>22}" for r in results))
    return "\n".join(lines)


def _phase(cpu: dict[str, float]) -> str:
    parts = [cpu.get("kube-apiserver", 0), cpu.get("etcd", 0)] + (
        [cpu["operator"]] if "operator" in cpu else []
    )
    return " / ".join(f"{x:.1f}" for x in parts) + f" s in {cpu.get('wall_s', 0):.1f}"


def _comp(r: Result, name: str) -> str:
    c = r.components.get(name, {})
    return f"{c.get('cpu_s', 0):.0f} s / {c.get('peak_rss_mib', 0):.0f} MiB"


def main() -> int:
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "100,1000").split(",") if s.strip()]
    idle = float(os.environ.get("BENCH_IDLE_SECONDS", "300"))
    workers = int(os.environ.get("BENCH_WORKERS", "8"))
    results: list[Result] = []
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    for n in sizes:
        results.append(asyncio.run(bench_one(n, workers, idle)))
        print(table(results))
        write(out, sizes, idle, workers, results)
    print(f"\n{table(results)}\n\nwrote {out}")
    return 0


def write(out: Path, sizes: list[int], idle: float, workers: int, results: list[Result]) -> None:
    out.write_text(
        json.dumps(
            {
                "sizes": sizes,
                "idle_seconds": idle,
                "workers": workers,
                "cpus": os.cpu_count(),
                "results": [{**asdict(r), "ratio": r.ratio} for r in results],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
