"""The weights cache against the sandbox: the download Job comes first, the vLLM pods after it.

kwok completes a Job's pod without running it, so these tests check the operator's side (order,
gating, status); the fetcher itself is tested as a real process in tests/fetcher.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from mimo_operator.api import constants, parse_mimo_deployment
from mimo_operator.fetcher.config_report import encode_config
from mimo_operator.models.checkpoint import planning_config
from mimo_operator.planner import Plan
from mimo_operator.render import plan_for
from mimo_operator.render.weights import node_copy_label
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pools import POOL_LABEL, node_manifests, parse_pools
from mimo_sandbox.pytest_plugin import NotYet, wait_for
from tests.fetcher.hub_server import fine_tune_config
from tests.integration.conftest import EXAMPLES, get_json, operator_in, weights_pvc
from tests.integration.operator_process import OperatorProcess

pytestmark = pytest.mark.sandbox
FLASH = "XiaomiMiMo/MiMo-V2-Flash"


def _mimo(sandbox: Sandbox, ns: str, name: str) -> Any:
    return get_json(sandbox, "-n", ns, "get", "mimo", name)


def _condition(obj: Any, type_: str) -> Any:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def _events_of(sandbox: Sandbox, ns: str, name: str) -> list[Any]:
    selector = f"involvedObject.name={name}"
    items: list[Any] = get_json(sandbox, "-n", ns, "get", "events", "--field-selector", selector)["items"]
    return items


def _items(sandbox: Sandbox, ns: str, kind: str) -> list[Any]:
    items: list[Any] = get_json(sandbox, "-n", ns, "get", kind)["items"]
    return items


def test_statefulset_is_created_only_after_the_download_job_completed(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    weights_pvc(sandbox, namespace)
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h100.yaml"))

    def ready() -> Any:
        obj = _mimo(sandbox, namespace, "mimo-fp8-h100")
        if obj.get("status", {}).get("phase") == "Ready":
            return obj
        jobs = _items(sandbox, namespace, "jobs")
        pods = [(p["metadata"]["name"], p.get("status", {})) for p in _items(sandbox, namespace, "pods")]
        return NotYet((obj.get("status", {}).get("phase"), [j.get("status") for j in jobs], pods))

    obj = wait_for(ready, timeout=90, description="Ready after the weights Job")

    (job,) = _items(sandbox, namespace, "jobs")
    (sts,) = _items(sandbox, namespace, "statefulsets")
    assert job["status"]["succeeded"] == 1
    # No StatefulSet existed before the weights were complete.
    assert sts["metadata"]["creationTimestamp"] >= job["status"]["completionTime"]
    cond = _condition(obj, "WeightsReady")
    assert (cond["status"], cond["reason"]) == ("True", "Complete")
    weights = obj["status"]["weights"]
    assert weights["job"] == job["metadata"]["name"]
    assert weights["location"] == (
        "pvc/mimo-weights:/models/XiaomiMiMo--MiMo-V2-Flash/0123456789abcdef0123456789abcdef01234567"
    )
    vllm = sts["spec"]["template"]["spec"]["containers"][0]
    assert vllm["args"][0] == "/models/XiaomiMiMo--MiMo-V2-Flash/0123456789abcdef0123456789abcdef01234567"
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in vllm["env"]


def test_no_vllm_pod_while_the_weights_cannot_be_fetched(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    # An operator-created claim; the sandbox has no storage provisioner, so it stays Pending and the
    # download never starts: the deployment must wait in Downloading with no vLLM pod at all.
    body = yaml.safe_load((EXAMPLES / "mimo-fp8-h100.yaml").read_text())
    body["spec"]["model"]["cache"] = {"volumeClaimTemplate": {"size": "400Gi"}}
    sandbox.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))

    def downloading() -> Any:
        obj = _mimo(sandbox, namespace, "mimo-fp8-h100")
        cond = _condition(obj, "WeightsReady")
        if obj.get("status", {}).get("phase") == "Downloading" and cond and cond["reason"] == "Downloading":
            return obj
        return NotYet(obj.get("status"))

    obj = wait_for(downloading, timeout=60, description="phase Downloading")

    (claim,) = _items(sandbox, namespace, "persistentvolumeclaims")
    assert claim["metadata"]["name"] == "mimo-fp8-h100-weights"
    assert claim["spec"]["resources"]["requests"]["storage"] == "400Gi"
    assert claim["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    assert len(_items(sandbox, namespace, "jobs")) == 1
    assert _items(sandbox, namespace, "statefulsets") == []
    assert [p for p in _items(sandbox, namespace, "pods") if "job-name" not in p["metadata"]["labels"]] == []
    assert obj["status"]["weights"]["location"].startswith("pvc/mimo-fp8-h100-weights:/models/")


def test_the_api_server_refuses_cache_specs_that_cannot_work(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    cases = [
        (
            {"persistentVolumeClaim": {"claimName": "w"}, "volumeClaimTemplate": {"size": "400Gi"}},
            "set one of persistentVolumeClaim, hostPath or volumeClaimTemplate",
        ),
        (
            {"persistentVolumeClaim": {"claimName": "w", "readOnly": True}, "fetch": "job"},
            "job cannot write to a readOnly persistentVolumeClaim",
        ),
    ]
    body = yaml.safe_load((EXAMPLES / "mimo-fp8-h100.yaml").read_text())
    for cache, expected in cases:
        body["spec"]["model"]["cache"] = cache
        proc = sandbox.kubectl(
            "-n", namespace, "apply", "--server-side", "-f", "-", input=yaml.safe_dump(body), check=False
        )
        assert proc.returncode != 0 and expected in proc.stderr, (cache, proc.stderr)


def test_a_download_job_the_cluster_refuses_a_pod_is_named_in_the_status(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    # A quota that admits no pod: the Job controller cannot create the fetcher and retries quietly
    # (only an Event says why, which the operator may not read). The deployment must not sit in an
    # unexplained "Downloading".
    weights_pvc(sandbox, namespace)
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}},
    }
    sandbox.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(quota))
    wait_for(
        lambda: (
            "pods"
            in (
                get_json(sandbox, "-n", namespace, "get", "resourcequota", "no-pods").get("status") or {}
            ).get("hard", {})
        ),
        timeout=30,
        description="the quota observed by the quota controller",
    )
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-fp8-h100.yaml"))

    def explained() -> Any:
        obj = _mimo(sandbox, namespace, "mimo-fp8-h100")
        cond = _condition(obj, "WeightsReady")
        return obj if cond and cond["reason"] == "DownloadPodNotCreated" else NotYet(obj.get("status"))

    # The grace minute, then at most one more look (the operator re-checks a waiting download each minute).
    obj = wait_for(explained, timeout=150, description="WeightsReady=False, DownloadPodNotCreated")
    (job,) = _items(sandbox, namespace, "jobs")
    assert f"kubectl describe job {job['metadata']['name']}" in _condition(obj, "WeightsReady")["message"]
    assert obj["status"]["phase"] == "Downloading"
    assert _items(sandbox, namespace, "pods") == [] and _items(sandbox, namespace, "statefulsets") == []


def _quota(sandbox: Sandbox, ns: str, pods: int) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "pods"},
        "spec": {"hard": {"pods": str(pods)}},
    }
    sandbox.kubectl("-n", ns, "apply", "-f", "-", input=yaml.safe_dump(body))
    wait_for(
        lambda: (
            (get_json(sandbox, "-n", ns, "get", "resourcequota", "pods").get("status") or {})
            .get("hard", {})
            .get("pods")
            == str(pods)
        ),
        timeout=30,
        description="the quota observed by the quota controller",
    )


def test_a_new_revision_downloads_while_the_old_keeps_serving_then_rolls_over(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    name = "mimo-fp8-h100"
    weights_pvc(sandbox, namespace)
    sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / f"{name}.yaml"))
    wait_for(
        lambda: _mimo(sandbox, namespace, name).get("status", {}).get("phase") == "Ready",
        timeout=90,
        description="Ready on the first revision",
    )
    (sts,) = _items(sandbox, namespace, "statefulsets")
    old_path, old_generation = (
        sts["spec"]["template"]["spec"]["containers"][0]["args"][0],
        sts["metadata"]["generation"],
    )
    # kwok completes a Job's pod at once; a quota with no room for one more pod keeps the new download
    # waiting, as a slow 313 GB download would.
    _quota(sandbox, namespace, pods=1)
    new_revision = "fedcba9876543210fedcba9876543210fedcba98"
    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        "mimo",
        name,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"model": {"revision": new_revision}}}),
    )

    def waiting() -> Any:
        obj = _mimo(sandbox, namespace, name)
        status = obj.get("status", {})
        progressing = _condition(obj, "Progressing")
        if (
            status.get("observedGeneration") == obj["metadata"]["generation"]
            and progressing
            and progressing["reason"] == "WaitingForWeights"
        ):
            return obj
        return NotYet(status)

    obj = wait_for(waiting, timeout=60, description="the new revision's download awaited")
    assert obj["status"]["phase"] == "Ready" and _condition(obj, "Ready")["status"] == "True"
    assert _condition(obj, "WeightsReady")["status"] == "False"
    assert new_revision in obj["status"]["weights"]["location"]
    # The running StatefulSet is untouched: same generation, still the old directory.
    (sts,) = _items(sandbox, namespace, "statefulsets")
    assert sts["metadata"]["generation"] == old_generation
    assert sts["spec"]["template"]["spec"]["containers"][0]["args"][0] == old_path

    # Room again; the waiting Job (the Job controller backs off its retries) is deleted and made anew.
    sandbox.kubectl("-n", namespace, "delete", "resourcequota", "pods")
    jobs = [
        j["metadata"]["name"]
        for j in _items(sandbox, namespace, "jobs")
        if not j.get("status", {}).get("succeeded")
    ]
    sandbox.kubectl("-n", namespace, "delete", "job", *jobs, "--wait=false")

    def rolled() -> Any:
        (sts,) = _items(sandbox, namespace, "statefulsets")
        path = sts["spec"]["template"]["spec"]["containers"][0]["args"][0]
        obj = _mimo(sandbox, namespace, name)
        done = new_revision in path and obj.get("status", {}).get("phase") == "Ready"
        return obj if done else NotYet((path, obj.get("status", {}).get("phase")))

    obj = wait_for(rolled, timeout=120, description="rolled over onto the new revision")
    assert (_condition(obj, "WeightsReady")["status"], _condition(obj, "Progressing")["reason"]) == (
        "True",
        "Complete",
    )


def test_a_fine_tune_is_planned_from_the_config_its_download_job_reported(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    name = "sft"
    body = yaml.safe_load((EXAMPLES / "mimo-fp8-h100.yaml").read_text())
    body["metadata"]["name"] = name
    # An operator-created claim stays unbound in the sandbox (no provisioner), so the Job's pod stays
    # Pending until this test ends it as the kubelet would: Succeeded, with the fetcher's report.
    body["spec"]["model"] = {
        "name": "acme/v25-sft",
        "configFrom": "checkpoint",
        "cache": {"volumeClaimTemplate": {"size": "400Gi"}},
    }
    sandbox.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))

    def awaiting() -> Any:
        obj = _mimo(sandbox, namespace, name)
        planned = _condition(obj, "Planned")
        pods = [p for p in _items(sandbox, namespace, "pods") if "job-name" in p["metadata"]["labels"]]
        if planned and planned["reason"] == "AwaitingCheckpointConfig" and pods:
            return obj, pods[0]
        return NotYet((obj.get("status"), len(pods)))

    obj, pod = wait_for(awaiting, timeout=60, description="Planned=False while the weights download")
    assert obj["status"]["phase"] == "Downloading" and "plan" not in obj["status"]
    assert _condition(obj, "Planned")["status"] == "False"
    assert _items(sandbox, namespace, "statefulsets") == []

    config = fine_tune_config()
    report = {
        "phase": "Complete",
        "sha": "0" * 40,
        "bytesDone": 1,
        "bytesTotal": 1,
        "config": encode_config(config),
    }
    terminated = {"exitCode": 0, "reason": "Completed", "message": json.dumps(report)}
    terminated |= {
        "startedAt": pod["metadata"]["creationTimestamp"],
        "finishedAt": pod["metadata"]["creationTimestamp"],
    }
    container = pod["spec"]["containers"][0]
    status = {
        "phase": "Succeeded",
        "containerStatuses": [
            {
                "name": container["name"],
                "image": container["image"],
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
        ],
    }
    sandbox.kubectl(
        "-n",
        namespace,
        "patch",
        "pod",
        pod["metadata"]["name"],
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )

    def planned() -> Any:
        obj = _mimo(sandbox, namespace, name)
        statefulsets = _items(sandbox, namespace, "statefulsets")
        if obj.get("status", {}).get("plan") and statefulsets:
            return obj, statefulsets[0]
        return NotYet(obj.get("status"))

    obj, sts = wait_for(planned, timeout=60, description="planned from the reported config.json")
    text = obj["status"]["weights"]["config"]
    assert json.loads(text) == planning_config(config)
    assert _condition(obj, "Planned")["status"] == "True"
    # The plan is the one for that config (a V2.5 shape, with its encoders), not V2-Flash's.
    md = parse_mimo_deployment(obj)
    expected = plan_for(md.spec, text)
    flash = plan_for(parse_mimo_deployment({**obj, "spec": {**obj["spec"], "model": {"name": FLASH}}}).spec)
    assert isinstance(expected, Plan) and isinstance(flash, Plan)
    assert expected.weights_gib_per_gpu != flash.weights_gib_per_gpu
    plan = obj["status"]["plan"]
    assert (plan["tensorParallel"], plan["maxModelLen"]) == (expected.tensor_parallel, expected.max_model_len)
    assert plan["weightsGiBPerGpu"] == pytest.approx(expected.weights_gib_per_gpu, abs=0.1)
    vllm = sts["spec"]["template"]["spec"]["containers"][0]
    assert vllm["args"][vllm["args"].index("--max-model-len") + 1] == str(expected.max_model_len)


def test_deployments_of_the_same_weights_share_one_download(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    weights_pvc(sandbox, namespace)
    first = yaml.safe_load((EXAMPLES / "mimo-fp8-h100.yaml").read_text())
    bodies = [first, {**first, "metadata": {"name": "mimo-fp8-h100-b"}}]
    names = [body["metadata"]["name"] for body in bodies]
    # Applied together, the two reconciles race for the same download Job; one Job must come of it.
    sandbox.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump_all(bodies))

    def fetched(*wanted: str) -> Any:
        def check() -> Any:
            objs = [_mimo(sandbox, namespace, name) for name in wanted]
            ready = [(_condition(obj, "WeightsReady") or {}).get("status") for obj in objs]
            sets = _items(sandbox, namespace, "statefulsets")
            owners = {s["metadata"]["labels"][constants.LABEL_DEPLOYMENT] for s in sets}
            if ready == ["True"] * len(wanted) and set(wanted) <= owners:
                return objs
            return NotYet((ready, owners, [o.get("status", {}).get("phase") for o in objs]))

        return check

    objs = wait_for(fetched(*names), timeout=150, description="both deployments' weights ready")
    (job,) = _items(sandbox, namespace, "jobs")
    job_name = job["metadata"]["name"]
    assert job["status"]["succeeded"] == 1 and not job["status"].get("failed")
    assert [obj["status"]["weights"]["job"] for obj in objs] == [job_name, job_name]
    (controller,) = [ref["name"] for ref in job["metadata"]["ownerReferences"] if ref.get("controller")]
    (other,) = [obj for obj in objs if obj["metadata"]["name"] != controller]
    assert f"MimoDeployment {controller}'s" in _condition(other, "WeightsReady")["message"]
    # The race for the Job's name is no failure: nobody was told the name is taken.
    for name in names:
        reasons = [e["reason"] for e in _events_of(sandbox, namespace, name) if e["type"] == "Warning"]
        assert "ChildNameTaken" not in reasons, reasons

    # A deployment added later finds the completed download and creates no Job at all.
    sandbox.kubectl(
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump({**first, "metadata": {"name": "mimo-late"}}),
    )
    (late,) = wait_for(fetched("mimo-late"), timeout=60, description="the late deployment's weights ready")
    assert [j["metadata"]["name"] for j in _items(sandbox, namespace, "jobs")] == [job_name]
    assert late["status"]["weights"]["job"] == job_name


def test_a_retained_cache_claim_outlives_its_deployment_and_is_adopted_again(
    sandbox: Sandbox, namespace: str, operator: OperatorProcess
) -> None:
    body = yaml.safe_load((EXAMPLES / "mimo-fp8-h100.yaml").read_text())
    body["spec"]["model"]["cache"] = {"volumeClaimTemplate": {"size": "400Gi", "whenDeleted": "Retain"}}
    name = body["metadata"]["name"]

    def downloading() -> Any:
        obj = _mimo(sandbox, namespace, name)
        return obj if obj.get("status", {}).get("phase") == "Downloading" else NotYet(obj.get("status"))

    sandbox.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))
    wait_for(downloading, timeout=60, description="phase Downloading")
    (claim,) = _items(sandbox, namespace, "persistentvolumeclaims")
    assert claim["metadata"]["name"] == f"{name}-weights"
    assert not claim["metadata"].get("ownerReferences")

    # Deleted: the garbage collector removes the Job (owned) and leaves the claim (not owned).
    sandbox.kubectl("-n", namespace, "delete", "mimo", name, "--wait=true")
    wait_for(
        lambda: _items(sandbox, namespace, "jobs") == [] or NotYet("the Job is still there"),
        timeout=60,
        description="the deployment's Job garbage-collected",
    )
    (kept,) = _items(sandbox, namespace, "persistentvolumeclaims")
    assert kept["metadata"]["uid"] == claim["metadata"]["uid"]

    # Applied again under the same name: the claim is adopted, not reported as someone else's.
    sandbox.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))
    obj = wait_for(downloading, timeout=60, description="Downloading again, on the kept claim")
    assert _condition(obj, "Ready")["reason"] != "ChildNameTaken"
    (again,) = _items(sandbox, namespace, "persistentvolumeclaims")
    assert again["metadata"]["uid"] == claim["metadata"]["uid"]
    assert len(_items(sandbox, namespace, "jobs")) == 1


def _gpu_nodes(sandbox: Sandbox, pool: str, count: int, taint: dict[str, str]) -> list[str]:
    """kwok-managed H100 nodes of a pool of this test's own, tainted so no other test's pod lands there."""
    (spec,) = parse_pools(
        yaml.safe_dump({"pools": [{"name": pool, "gpu": "H100-80GB", "count": count, "gpusPerNode": 8}]})
    )
    nodes = node_manifests([spec])
    for node in nodes:
        node["spec"] = {"taints": [taint]}
    sandbox.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(nodes))
    return [node["metadata"]["name"] for node in nodes]


def test_node_local_copies_are_made_per_node_and_pods_run_only_where_a_copy_is_complete(
    sandbox: Sandbox, mimo_crd: str, namespace: str, tmp_path: Any
) -> None:
    pool = f"nl-{namespace[-6:]}"
    taint = {"key": "mimo-test/node-local", "value": namespace, "effect": "NoSchedule"}
    body = yaml.safe_load((EXAMPLES / "mimo-fp8-h100.yaml").read_text())
    name = body["metadata"]["name"]
    body["spec"]["replicas"] = 2
    body["spec"]["model"]["cache"] = {"hostPath": {"path": "/mnt/nvme/mimo"}, "fetch": "job"}
    body["spec"]["placement"] = {
        "nodeSelector": {POOL_LABEL: pool},
        "tolerations": [
            {"key": taint["key"], "operator": "Equal", "value": namespace, "effect": "NoSchedule"}
        ],
    }
    label = node_copy_label(
        parse_mimo_deployment({**body, "metadata": {"name": name, "namespace": namespace}})
    )
    (first,) = _gpu_nodes(sandbox, pool, 1, taint)
    # The resync stays at 300 s: the node that joins below is found by the node-local recheck.
    env = {"MIMO_OPERATOR_ALLOW_HOST_PATH": "true", "MIMO_OPERATOR_NODE_RECHECK_SECONDS": "5"}
    try:
        with operator_in(sandbox, namespace, tmp_path, env=env) as operator:
            operator_log = operator.log_tail
            sandbox.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(body))

            def serving_one() -> Any:
                obj = _mimo(sandbox, namespace, name)
                pods = [
                    p for p in _items(sandbox, namespace, "pods") if "job-name" not in p["metadata"]["labels"]
                ]
                placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
                if obj.get("status", {}).get("readyReplicas") == 1 and len(placed) == 2:
                    return obj, placed
                return NotYet((obj.get("status", {}).get("phase"), placed, operator_log(5)))

            obj, placed = wait_for(
                serving_one, timeout=120, description="one replica served from the node's copy"
            )
            # The one node of the pool got a copy (its Job pruned once the label recorded it) ...
            node = get_json(sandbox, "get", "node", first)
            assert node["metadata"]["labels"][label] == "complete"
            assert _items(sandbox, namespace, "jobs") == []
            assert [
                n["metadata"]["name"] for n in get_json(sandbox, "get", "nodes", "-l", label)["items"]
            ] == [first]
            weights = obj["status"]["weights"]
            assert weights["progress"] == "1/1 nodes"
            assert weights["location"].startswith("hostPath:/mnt/nvme/mimo/XiaomiMiMo--MiMo-V2-Flash/")
            assert _condition(obj, "WeightsReady")["status"] == "True"
            (sts,) = _items(sandbox, namespace, "statefulsets")
            terms = sts["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]["nodeSelectorTerms"]
            assert terms == [{"matchExpressions": [{"key": label, "operator": "Exists"}]}]
            # ... one pod runs there; the second replica has no node with a copy and free GPUs.
            assert sorted(placed.values(), key=str) == sorted([first, None], key=str)

            # A node joins the pool: it gets a Job of its own, and the waiting pod is scheduled there
            # only after that node's copy is complete (the scheduler reads the label, not a hint).
            (second,) = [n for n in _gpu_nodes(sandbox, pool, 2, taint) if n != first]

            def second_job() -> Any:
                jobs = _items(sandbox, namespace, "jobs")
                return jobs or NotYet(operator_log(5))

            (job,) = wait_for(second_job, timeout=60, description="a download Job for the new node")
            pinned = job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"
            ]["nodeSelectorTerms"]
            assert pinned == [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [second]}]}
            ]

            def both_served() -> Any:
                obj = _mimo(sandbox, namespace, name)
                pods = [
                    p for p in _items(sandbox, namespace, "pods") if "job-name" not in p["metadata"]["labels"]
                ]
                if obj.get("status", {}).get("readyReplicas") == 2:
                    return obj, pods
                return NotYet(
                    (obj.get("status", {}).get("weights"), [p["spec"].get("nodeName") for p in pods])
                )

            obj, pods = wait_for(both_served, timeout=120, description="the second replica on the new node")
            assert sorted(p["spec"]["nodeName"] for p in pods) == sorted([first, second])
            labelled = get_json(sandbox, "get", "node", second)["metadata"]["labels"]
            assert labelled[label] == "complete"
            assert obj["status"]["weights"]["progress"] == "2/2 nodes"
            (late,) = [p for p in pods if p["spec"]["nodeName"] == second]
            scheduled = next(c for c in late["status"]["conditions"] if c["type"] == "PodScheduled")
            # The node was labelled (its copy complete) before the pod was bound to it: the time of the
            # API server's own record of the label's last writer.
            managed = get_json(sandbox, "get", "node", second, "--show-managed-fields")["metadata"][
                "managedFields"
            ]
            (written,) = [m["time"] for m in managed if label in json.dumps(m.get("fieldsV1", {}))]
            assert written <= scheduled["lastTransitionTime"], (written, scheduled)
            # No node outside the deployment's selector was given a copy.
            assert {
                n["metadata"]["name"] for n in get_json(sandbox, "get", "nodes", "-l", label)["items"]
            } == {first, second}
    finally:
        sandbox.kubectl("delete", "node", f"{pool}-0", f"{pool}-1", "--ignore-not-found", check=False)
