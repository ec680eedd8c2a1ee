"""Autoscaling and monitoring against the sandbox: the operator stays the only writer of pod counts."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.kube.compare import covers
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import NotYet, wait_for
from mimo_sandbox.upstream import GATEWAY_API, KEDA, PROMETHEUS_OPERATOR, UpstreamCrds, ensure_crds
from tests.integration.conftest import EXAMPLES, get_json
from tests.integration.custom_metrics import CustomMetricsApi
from tests.integration.operator_process import OperatorProcess
from tests.unit.test_chart import render
from tests.unit.test_render_golden import GOLDEN, SCENARIOS

pytestmark = pytest.mark.sandbox


@contextmanager
def upstream_crds(sandbox: Sandbox, *projects: UpstreamCrds) -> Iterator[None]:
    """The projects' own CRDs (fetched from the Go module proxy at the pinned versions), removed
    afterwards so other tests see a cluster without them. Server-side apply: the Prometheus Operator's
    CRDs are larger than the last-applied annotation allows."""
    files = [path for project in projects for path in ensure_crds(project)]
    names = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in files]
    try:
        for path in files:
            sandbox.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        for name in names:
            sandbox.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{name}")
        yield
    finally:
        for name in names:
            sandbox.kubectl("delete", "crd", name, "--ignore-not-found", "--wait=true", check=False)


@pytest.fixture
def optional_crds(sandbox: Sandbox) -> Iterator[None]:
    """KEDA's and the Prometheus Operator's real CRDs."""
    with upstream_crds(sandbox, KEDA, PROMETHEUS_OPERATOR):
        yield


def _apply(sandbox: Sandbox, ns: str, **spec: Any) -> None:
    doc = {
        "apiVersion": "serving.mimo.dev/v1alpha1",
        "kind": "MimoDeployment",
        "metadata": {"name": "mimo-auto", "namespace": ns},
        "spec": {"gpu": {"type": "H200-141GB"}, **spec},
    }
    sandbox.kubectl(
        "apply",
        "--server-side",
        "--field-manager=user",
        "--force-conflicts",
        "-f",
        "-",
        input=json.dumps(doc),
    )


def _conditions(sandbox: Sandbox, ns: str) -> dict[str, Any]:
    obj = get_json(sandbox, "-n", ns, "get", "mimo", "mimo-auto")
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def test_hpa_targets_the_deployment_and_the_operator_follows_its_writes(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    _apply(
        sandbox,
        namespace,
        autoscaling={"minReplicas": 1, "maxReplicas": 2, "metric": "queueDepth", "target": "5"},
    )
    wait_for(
        lambda: sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto", check=False).returncode == 0,
        timeout=30,
        description="HorizontalPodAutoscaler created",
    )
    table = sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto").stdout
    assert "MimoDeployment/mimo-auto" in table
    hpa = get_json(sandbox, "-n", namespace, "get", "hpa", "mimo-auto")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm_num_requests_waiting"

    # Write replicas through the scale subresource, as the HPA controller does.
    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        "mimo",
        "mimo-auto",
        "--subresource=scale",
        "--type=merge",
        "-p",
        '{"spec":{"replicas":2}}',
    )
    wait_for(
        lambda: get_json(sandbox, "-n", namespace, "get", "sts", "mimo-auto")["spec"]["replicas"] == 2,
        timeout=30,
        description="StatefulSet follows the scale write",
    )
    scale_path = f"/apis/serving.mimo.dev/v1alpha1/namespaces/{namespace}/mimodeployments/mimo-auto/scale"

    def read_scale() -> Any:
        return json.loads(sandbox.kubectl("get", "--raw", scale_path).stdout)

    wait_for(
        lambda: (
            read_scale()["status"].get("selector")
            == "serving.mimo.dev/deployment=mimo-auto,serving.mimo.dev/role=leader"
        ),
        timeout=30,
        description="scale subresource reports the leader selector",
    )
    scale = read_scale()
    assert scale["spec"]["replicas"] == 2
    # Outside [min, max] the operator clamps: a write of 5 runs 2. Replicas were already 2, so wait
    # until the operator has reported on the generation the write made (a scale write changes spec,
    # so it bumps metadata.generation), not merely for 2, which held before the write.
    written = get_json(
        sandbox,
        "-n",
        namespace,
        "patch",
        "mimo",
        "mimo-auto",
        "--subresource=scale",
        "--type=merge",
        "-p",
        '{"spec":{"replicas":5}}',
    )
    assert written["spec"]["replicas"] == 5
    generation = get_json(sandbox, "-n", namespace, "get", "mimo", "mimo-auto")["metadata"]["generation"]
    status = wait_for(
        lambda: (
            (obj := get_json(sandbox, "-n", namespace, "get", "mimo", "mimo-auto"))["status"].get(
                "observedGeneration", 0
            )
            >= generation
            and obj["status"]
        ),
        timeout=30,
        description=f"status for generation {generation} (the write of 5)",
    )
    assert status["replicas"] == 2
    assert get_json(sandbox, "-n", namespace, "get", "sts", "mimo-auto")["spec"]["replicas"] == 2

    # Without a metrics adapter the HPA cannot read vLLM's queue; the operator says why.
    cond = wait_for(
        lambda: (
            (c := _conditions(sandbox, namespace).get("Autoscaling"))
            and c["reason"] not in ("AutoscalerPending",)
            and c
        ),
        timeout=60,
        description="Autoscaling condition from the HPA's status",
    )
    assert cond["status"] == "False" and "Prometheus Adapter" in cond["message"]

    # The user takes autoscaling out of git: server-side apply by the same manager removes the field.
    _apply(sandbox, namespace, replicas=1)
    wait_for(
        lambda: sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto", check=False).returncode != 0,
        timeout=30,
        description="HorizontalPodAutoscaler deleted",
    )
    wait_for(
        lambda: "Autoscaling" not in _conditions(sandbox, namespace),
        timeout=30,
        description="autoscaling conditions removed",
    )


def test_keda_and_pod_monitor_only_when_their_crds_exist(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess, optional_crds: None
) -> None:
    # The operator rediscovers optional APIs every 60 s; a fresh operator sees the CRDs at once.
    operator.kill()
    fresh = OperatorProcess(sandbox, namespace, operator.log_path.parent).start()
    try:
        _apply(sandbox, namespace, autoscaling={"engine": "keda", "maxReplicas": 3})
        scaled = wait_for(
            lambda: json.loads(
                sandbox.kubectl(
                    "-n", namespace, "get", "scaledobject", "mimo-auto", "-o", "json", check=False
                ).stdout
                or "null"
            ),
            timeout=30,
            description="ScaledObject created",
        )
        assert scaled["spec"]["scaleTargetRef"] == {
            "apiVersion": "serving.mimo.dev/v1alpha1",
            "kind": "MimoDeployment",
            "name": "mimo-auto",
        }
        assert scaled["spec"]["triggers"][0]["type"] == "prometheus"
        assert sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto", check=False).returncode != 0
        monitor = get_json(sandbox, "-n", namespace, "get", "podmonitor", "mimo-auto")
        assert monitor["spec"]["selector"]["matchLabels"]["serving.mimo.dev/deployment"] == "mimo-auto"
        wait_for(
            lambda: _conditions(sandbox, namespace).get("Autoscaling", {}).get("status") == "True",
            timeout=30,
            description="Autoscaling condition True with KEDA present",
        )
    finally:
        fresh.kill()


def test_keda_missing_is_reported_and_nothing_autoscales(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    _apply(sandbox, namespace, autoscaling={"engine": "keda"})
    cond = wait_for(
        lambda: _conditions(sandbox, namespace).get("Autoscaling"),
        timeout=30,
        description="Autoscaling condition",
    )
    assert (cond["status"], cond["reason"]) == ("False", "KedaMissing")
    events = get_json(
        sandbox, "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=mimo-auto"
    )
    assert any(e["reason"] == "KedaMissing" and e["type"] == "Warning" for e in events["items"])
    assert sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto", check=False).returncode != 0
    # No PodMonitor CRD here: the pods carry scrape annotations instead.
    pod = wait_for(
        lambda: get_json(sandbox, "-n", namespace, "get", "pods")["items"],
        timeout=30,
        description="vLLM pod created",
    )[0]
    assert pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_operator_metrics_move_with_reconciles(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    before = operator.metrics()
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h200.yaml"))
    wait_for(
        lambda: operator.metrics().get('mimo_operator_deployments{phase="Ready"}') == 1,
        timeout=60,
        description="deployments{phase=Ready} gauge at 1",
    )
    after = operator.metrics()
    changed = 'mimo_operator_reconciles_total{result="changed"}'
    assert after[changed] > before.get(changed, 0)
    assert after['mimo_operator_api_requests_total{code="201",resource="statefulsets",verb="apply"}'] >= 1
    assert (
        after[f'mimo_operator_gpus_planned{{deployment="mimo-fp8-h200",deployment_namespace="{namespace}"}}']
        == 4
    )
    assert (
        after[f'mimo_operator_gpus_ready{{deployment="mimo-fp8-h200",deployment_namespace="{namespace}"}}']
        == 4
    )
    assert after['mimo_operator_reconcile_duration_seconds_count{result="changed"}'] >= 1


# --- issue 19: the real upstream CRDs accept what we render --------------------------------------

SERVED = dataclasses.replace(
    RenderConfig(), keda_available=True, pod_monitor_available=True, gateway_api_available=True
)
UPSTREAM_KINDS = {"ScaledObject", "PodMonitor", "HTTPRoute", "HorizontalPodAutoscaler"}


def _variants(namespace: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every golden scenario with each autoscaler and a route, so each optional kind is rendered from
    every plan shape (single-node, multi-node, capped start-up windows, scale-to-zero)."""
    route = {
        "gateway": {"name": "public", "namespace": "gateways", "sectionName": "https"},
        "hostnames": ["llm.example.com"],
    }
    for name in SCENARIOS:
        for label, extra in (
            ("hpa", {"autoscaling": {"maxReplicas": 4}}),
            ("keda", {"autoscaling": {"engine": "keda", "scaleUpReplicasPerStartup": 2}}),
            ("keda-zero", {"autoscaling": {"engine": "keda", "scaleToZero": True}}),
            ("hpa-slow-start", {"autoscaling": {"maxReplicas": 2}, "probes": {"startupBudgetSeconds": 7200}}),
        ):
            body = yaml.safe_load((GOLDEN / f"{name}.input.yaml").read_text())
            body["metadata"]["namespace"] = namespace
            body["metadata"]["name"] = f"{name}-{label}"[:40]
            body["spec"].update(extra, route=route)
            yield f"{name}/{label}", body


def _server_accepts(sandbox: Sandbox, objects: list[dict[str, Any]], *, dry_run: bool) -> list[str]:
    args = ["apply", "--server-side", "--field-manager=mimo-test", "-o", "name", "-f", "-"]
    if dry_run:
        args.insert(1, "--dry-run=server")
    proc = sandbox.kubectl(
        *args, input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}), check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_upstream_crds_accept_every_optional_child_we_render(sandbox: Sandbox, namespace: str) -> None:
    with upstream_crds(sandbox, KEDA, PROMETHEUS_OPERATOR, GATEWAY_API):
        seen: set[str] = set()
        for variant, body in _variants(namespace):
            md = parse_mimo_deployment(body)
            plan = plan_for(md.spec)
            assert isinstance(plan, Plan), variant
            optional = [c for c in render_children(md, plan, SERVED) if c["kind"] in UPSTREAM_KINDS]
            for child in optional:
                child["metadata"].pop("ownerReferences")  # no owner object exists in this test
            seen.update(c["kind"] for c in optional)
            # Validated by the real schemas (and the HPA's by kube-apiserver), first without writing ...
            names = _server_accepts(sandbox, optional, dry_run=True)
            assert len(names) == len(optional), variant
        assert seen == UPSTREAM_KINDS
        # ... then stored for real, and read back as rendered (no field pruned by the schema).
        _, body = next(_variants(namespace))
        md = parse_mimo_deployment(body)
        plan = plan_for(md.spec)
        assert isinstance(plan, Plan)
        optional = [c for c in render_children(md, plan, SERVED) if c["kind"] in UPSTREAM_KINDS]
        for child in optional:
            child["metadata"].pop("ownerReferences")
        _server_accepts(sandbox, optional, dry_run=False)
        for child in optional:
            stored = get_json(
                sandbox, "-n", namespace, "get", f"{child['kind'].lower()}", child["metadata"]["name"]
            )
            # Everything we set is there as we set it (the server may add its defaults beside it).
            assert covers(stored["spec"], child["spec"]), child["kind"]


def test_upstream_crds_accept_the_charts_monitoring_objects(sandbox: Sandbox, namespace: str) -> None:
    docs = render(
        sandbox.bin_dir / "helm",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.prometheusRule.enabled=true",
    )
    objects = [d for d in docs if d["kind"] in ("ServiceMonitor", "PrometheusRule")]
    assert sorted(o["kind"] for o in objects) == ["PrometheusRule", "ServiceMonitor"]
    for obj in objects:
        obj["metadata"]["namespace"] = namespace
    with upstream_crds(sandbox, PROMETHEUS_OPERATOR):
        assert len(_server_accepts(sandbox, objects, dry_run=True)) == 2


def _expected_timeout(sandbox: Sandbox, namespace: str, name: str) -> int:
    """From the plan the operator reported: max-model-len tokens at the replica's roofline decode rate
    shared by vLLM's 1024 max_num_seqs, in 10 s steps, between 300 s and 3600 s (README)."""
    obj = get_json(sandbox, "-n", namespace, "get", "mimo", name)
    plan = plan_for(parse_mimo_deployment(obj).spec)
    assert isinstance(plan, Plan) and plan.est_decode_tokens_per_s_per_gpu
    assert obj["status"]["plan"]["maxModelLen"] == plan.max_model_len
    speed = plan.est_decode_tokens_per_s_per_gpu * obj["status"]["plan"]["gpusPerReplica"] / 1024
    return max(300, min(3600, math.ceil(plan.max_model_len / speed / 10) * 10))


def test_route_with_timeouts_from_the_plan_only_where_the_gateway_api_is_served(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    route = {"gateway": {"name": "public"}, "endpointPicker": {"name": "mimo-epp"}}
    _apply(sandbox, namespace, route=route, context={"maxModelLen": 65536})
    wait_for(
        lambda: get_json(sandbox, "-n", namespace, "get", "mimo", "mimo-auto").get("status", {}).get("phase"),
        timeout=30,
        description="status written",
    )
    # No Gateway API in the cluster: nothing routed, nothing failing.
    assert (
        sandbox.kubectl(
            "-n", namespace, "get", "httproutes.gateway.networking.k8s.io", check=False
        ).returncode
        != 0
    )
    with upstream_crds(sandbox, GATEWAY_API):
        operator.kill()  # a fresh operator discovers the API at once (else within discoverySeconds)
        fresh = OperatorProcess(sandbox, namespace, operator.log_path.parent).start()
        try:
            routed = wait_for(
                lambda: json.loads(
                    sandbox.kubectl(
                        "-n", namespace, "get", "httproute", "mimo-auto", "-o", "json", check=False
                    ).stdout
                    or "null"
                ),
                timeout=30,
                description="HTTPRoute created",
            )
            (rule,) = routed["spec"]["rules"]
            expected = _expected_timeout(sandbox, namespace, "mimo-auto")
            assert rule["timeouts"] == {"request": f"{expected}s", "backendRequest": f"{expected}s"}
            assert 300 < expected < 3600  # 64k tokens: between the floor and the ceiling
            # No InferencePool API is served here (the Gateway API Inference Extension is not on the
            # module proxy): the route goes straight to the API Service and no pool is attempted.
            assert rule["backendRefs"] == [
                {"group": "", "kind": "Service", "name": "mimo-auto", "port": 8000, "weight": 1}
            ]
            # A longer max-model-len lengthens the timeout (a new generation of the spec).
            _apply(sandbox, namespace, route=route, context={"maxModelLen": 131072})
            longer = wait_for(
                lambda: (
                    (
                        t := get_json(sandbox, "-n", namespace, "get", "httproute", "mimo-auto")["spec"][
                            "rules"
                        ][0]["timeouts"]["request"]
                    )
                    != f"{expected}s"
                    and int(t.removesuffix("s"))
                ),
                timeout=30,
                description="timeout follows the new max-model-len",
            )
            assert longer == _expected_timeout(sandbox, namespace, "mimo-auto") > expected
            # Taking the route out of the spec deletes it.
            _apply(sandbox, namespace, context={"maxModelLen": 131072})
            wait_for(
                lambda: (
                    sandbox.kubectl("-n", namespace, "get", "httproute", "mimo-auto", check=False).returncode
                    != 0
                ),
                timeout=30,
                description="HTTPRoute pruned",
            )
        finally:
            fresh.kill()


def test_status_reports_the_start_up_aware_policy_and_the_hpa_carries_it(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    _apply(sandbox, namespace, autoscaling={"maxReplicas": 3, "scaleUpReplicasPerStartup": 2})
    scaling = wait_for(
        lambda: (
            get_json(sandbox, "-n", namespace, "get", "mimo", "mimo-auto")
            .get("status", {})
            .get("autoscaling")
        ),
        timeout=30,
        description="status.autoscaling",
    )
    sts = get_json(sandbox, "-n", namespace, "get", "sts", "mimo-auto")
    probe = sts["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert scaling["startupBudgetSeconds"] == probe["periodSeconds"] * probe["failureThreshold"]
    hpa = wait_for(
        lambda: json.loads(
            sandbox.kubectl("-n", namespace, "get", "hpa", "mimo-auto", "-o", "json", check=False).stdout
            or "null"
        ),
        timeout=30,
        description="HorizontalPodAutoscaler created",
    )
    # What the kube-controller-manager's HPA enforces, as the API server stored it.
    up = hpa["spec"]["behavior"]["scaleUp"]
    assert up["policies"] == [{"type": "Pods", "value": 2, "periodSeconds": scaling["scaleUpPeriodSeconds"]}]
    assert up["stabilizationWindowSeconds"] == scaling["scaleUpStabilizationSeconds"]
    assert scaling["scaleUpPeriodSeconds"] == min(scaling["startupBudgetSeconds"], 1800)


def _rescales(sandbox: Sandbox, namespace: str) -> list[tuple[datetime.datetime, int]]:
    """(when, new size) of each rescale the HPA controller announced, oldest first."""
    events = get_json(
        sandbox,
        "-n",
        namespace,
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=HorizontalPodAutoscaler",
    )["items"]
    found = []
    for event in events:
        size = re.match(r"New size: (\d+);", event.get("message", ""))
        if event.get("reason") == "SuccessfulRescale" and size:
            when = event.get("firstTimestamp") or event.get("eventTime")
            found.append((datetime.datetime.fromisoformat(when.replace("Z", "+00:00")), int(size[1])))
    return sorted(found)


def test_a_sustained_queue_scales_up_no_faster_than_the_start_up_policy(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    """The real HPA controller reads a queue ten times its target through a custom metrics API and
    would order the maximum at once; the derived policy lets it add one replica per start-up window."""
    budget = 60  # the smallest start-up budget the CRD allows, so two windows pass in a test's time
    with CustomMetricsApi(sandbox, {"vllm_num_requests_waiting": "50"}) as metrics:
        _apply(
            sandbox,
            namespace,
            probes={"startupBudgetSeconds": budget},
            autoscaling={"minReplicas": 1, "maxReplicas": 3, "metric": "queueDepth", "target": "5"},
        )

        def third_replica_ordered() -> Any:
            if get_json(sandbox, "-n", namespace, "get", "mimo", "mimo-auto")["spec"].get("replicas") == 3:
                return True
            hpa = get_json(sandbox, "-n", namespace, "get", "hpa", "mimo-auto")
            return NotYet(f"{json.dumps(hpa.get('status'))}; metric queries: {metrics.queries[-2:]}")

        wait_for(third_replica_ordered, timeout=300, description="the HPA to order the third replica")
        scaling = get_json(sandbox, "-n", namespace, "get", "mimo", "mimo-auto")["status"]["autoscaling"]
        assert (scaling["scaleUpReplicas"], scaling["scaleUpPeriodSeconds"]) == (1, budget)

        rescales = _rescales(sandbox, namespace)
        # One replica at a time although 50 waiting against a target of 5 asks for 10 per replica.
        assert [size for _, size in rescales] == [2, 3], rescales
        # The second only after a whole start-up window (event times are whole seconds).
        assert (rescales[1][0] - rescales[0][0]).total_seconds() >= budget - 1, rescales
        assert (
            "vllm_num_requests_waiting",
            "serving.mimo.dev/deployment=mimo-auto,serving.mimo.dev/role=leader",
        ) in metrics.queries

        # The operator turns the scale writes into StatefulSets and says the autoscaler works.
        assert get_json(sandbox, "-n", namespace, "get", "sts", "mimo-auto")["spec"]["replicas"] == 3
        cond = wait_for(
            lambda: (c := _conditions(sandbox, namespace).get("Autoscaling")) and c["status"] == "True" and c,
            timeout=60,
            description="Autoscaling condition True",
        )
        assert cond["reason"] == "Active"
