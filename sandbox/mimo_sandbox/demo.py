"""`mimo-operator demo`: the whole product on a laptop, no GPUs needed.

Starts the sandbox control plane with simulated GPU node pools, installs the CRD, runs the operator,
applies the examples (single-node, multi-node, and one that cannot work), waits for them to settle,
and prints what a platform engineer would look at. Interactive runs keep the cluster up until
Ctrl-C; `--non-interactive` tears it down and exits (used by the tests).

SIGTERM stops the demo the way Ctrl-C does, at any point: the operator is started through the
sandbox (`Sandbox.spawn`), so the sandbox's teardown ends it with the control plane, and the
sandbox's signal handler hands over to the demo's, which unwinds to the same cleanup as Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from mimo_operator.api.crd import crd_yaml
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pools import parse_pools
from mimo_sandbox.volumes import bound_claims_json

NAMESPACE = "mimo-demo"
# Enough GPU nodes to run every example at once: fp8 on one H100 node, a bf16 group on two more,
# fp8 on the H200 node; the L40S nodes are there for the plan that cannot work on them.
DEMO_POOLS = """
pools:
  - {name: h100, gpu: H100-80GB, count: 3, gpusPerNode: 8}
  - {name: h200, gpu: H200-141GB, count: 1, gpusPerNode: 8}
  - {name: l40s, gpu: L40S-48GB, count: 2, gpusPerNode: 4}
"""
EXAMPLES = (
    "mimo-fp8-h100.yaml",
    "mimo-bf16-h100-multinode.yaml",
    "mimo-fp8-h200.yaml",
    "mimo-infeasible.yaml",
)
# PersistentVolumeClaims the examples mount; the sandbox has no provisioner, so the demo binds them
# to hostPath volumes (on a real cluster they would hold the weights).
CLAIMS = ("mimo-weights", "mimo-weights-bf16")
PHASES = "phases"  # the log of the demo's `kubectl get mimo --watch`


def _say(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _settled(sandbox: Sandbox) -> tuple[bool, list[Any]]:
    items: list[Any] = json.loads(sandbox.kubectl("-n", NAMESPACE, "get", "mimo", "-o", "json").stdout)[
        "items"
    ]
    done = len(items) == len(EXAMPLES) and all(
        (obj.get("status") or {}).get("phase") in ("Ready", "Failed")
        and obj["status"].get("observedGeneration") == obj["metadata"]["generation"]
        for obj in items
    )
    return done, items


def _watch_phases(sandbox: Sandbox) -> None:
    """`kubectl get mimo --watch` for the whole demo, one "name phase" line per change, into the log
    of a process the sandbox ends with itself: a phase as short as Downloading is seen, not polled."""
    template = 'jsonpath={.metadata.name}{" "}{.status.phase}{"\\n"}'
    argv = [str(sandbox.bins.kubectl), f"--kubeconfig={sandbox.kubeconfig}", "-n", NAMESPACE]
    sandbox.spawn(PHASES, [*argv, "get", "mimo", "--watch", "-o", template])


def phases_seen(log: str) -> dict[str, list[str]]:
    """Each deployment's phases in the order the watch saw them, a repeat of the same phase once."""
    seen: dict[str, list[str]] = {}
    for line in log.splitlines():
        name, _, phase = line.strip().partition(" ")
        if not name or not phase:
            continue
        phases = seen.setdefault(name, [])
        if not phases or phases[-1] != phase:
            phases.append(phase)
    return seen


def _report(sandbox: Sandbox, items: list[Any]) -> None:
    _say("\n$ kubectl get mimo -n mimo-demo -o wide")
    _say(sandbox.kubectl("-n", NAMESPACE, "get", "mimo", "-o", "wide").stdout.rstrip())
    log = sandbox.log_path(PHASES)
    _say("\nPhases each deployment went through (kubectl get mimo --watch):")
    for name, phases in sorted(phases_seen(log.read_text() if log.exists() else "").items()):
        _say(f"  {name}: {' -> '.join(phases)}")
    for obj in items:
        status = obj.get("status") or {}
        name = obj["metadata"]["name"]
        plan = status.get("plan")
        if plan:
            _say(f"\n{name}: {plan['summary']}")
            _say(
                f"  GPUs/replica {plan['gpusPerReplica']} on {plan['nodesPerReplica']} node(s), "
                f"TP{plan['tensorParallel']} PP{plan['pipelineParallel']} DP{plan['dataParallel']}, "
                f"KV {plan['kvCacheGiBPerGpu']} GiB/GPU = {plan['kvCacheTokens']:,} tokens, "
                f"endpoint {status.get('endpoint')}"
            )
        else:
            planned: dict[str, Any] = next(
                (c for c in status.get("conditions", []) if c["type"] == "Planned"), {}
            )
            _say(f"\n{name}: {status.get('phase')} ({planned.get('reason')}): {planned.get('message')}")
            events = json.loads(
                sandbox.kubectl(
                    "-n",
                    NAMESPACE,
                    "get",
                    "events",
                    "--field-selector",
                    f"involvedObject.name={name}",
                    "-o",
                    "json",
                ).stdout
            )["items"]
            for event in events:
                _say(f"  event {event['type']} {event['reason']}: {event['message']}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_demo(examples_dir: Path, interactive: bool, timeout: float = 180.0) -> int:
    missing = [name for name in EXAMPLES if not (examples_dir / name).exists()]
    if missing:
        _say(f"demo: examples not found in {examples_dir}: {', '.join(missing)}")
        return 1
    _say("Starting the sandbox: etcd, kube-apiserver, controller-manager, scheduler, kwok GPU nodes")
    _say("(the first run builds the Kubernetes binaries from source: 10-20 minutes; later runs take seconds)")
    # Installed before the sandbox arms its own handler, which tears down and then calls this one.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    sandbox = Sandbox(pools=parse_pools(DEMO_POOLS))
    try:
        return _run(sandbox, examples_dir, interactive, timeout)
    except KeyboardInterrupt:
        _say("\nstopping ...")
        return 0 if interactive else 130
    finally:
        sandbox.stop()  # the operator first, then the control plane
        signal.signal(signal.SIGTERM, previous)


def _run(sandbox: Sandbox, examples_dir: Path, interactive: bool, timeout: float) -> int:
    sandbox.start()
    _say(f"Sandbox up in {sandbox.startup_seconds:.1f}s with nodes {', '.join(sandbox.node_names)}")
    sandbox.kubectl("apply", "--server-side", "-f", "-", input=crd_yaml())
    sandbox.kubectl("wait", "--for=condition=Established", "crd/mimodeployments.serving.mimo.dev")
    sandbox.kubectl("create", "namespace", NAMESPACE)
    sandbox.kubectl("apply", "-f", "-", input=bound_claims_json(NAMESPACE, *CLAIMS))
    operator = sandbox.spawn(
        "operator",
        [sys.executable, "-m", "mimo_operator.cli", "run", "-n", NAMESPACE,
         "--liveness-port", "0", "--metrics-port", "0"],
        env=sandbox.env(),
    )  # fmt: skip
    _watch_phases(sandbox)
    log_path = sandbox.log_path("operator")
    _say(f"Operator running (log: {log_path}); applying {', '.join(EXAMPLES)}")
    for name in EXAMPLES:
        sandbox.kubectl("-n", NAMESPACE, "apply", "-f", str(examples_dir / name))
    deadline = time.monotonic() + timeout
    done, items = _settled(sandbox)
    while not done and time.monotonic() < deadline:
        if operator.poll() is not None:
            _say(f"demo: the operator exited with {operator.returncode}; see {log_path}")
            return 1
        time.sleep(1)
        done, items = _settled(sandbox)
    _report(sandbox, items)
    if not done:
        _say(f"\ndemo: not every deployment settled within {timeout:.0f}s; see {log_path}")
        return 1
    if interactive:
        _say("\nThe sandbox stays up until Ctrl-C. In another terminal:")
        _say(f"  export KUBECONFIG={sandbox.kubeconfig}")
        _say(f"  export PATH={sandbox.bin_dir}:$PATH")
        _say(f"  kubectl -n {NAMESPACE} get mimo,statefulsets,pods -o wide")
        signal.pause()  # until a signal: Ctrl-C and SIGTERM raise KeyboardInterrupt
    return 0
