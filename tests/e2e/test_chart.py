"""The Helm chart against the sandbox's real API server: install, the operator running as the chart's
ServiceAccount reconciling an example to Ready under the restricted Pod Security Standard, least
privilege, upgrade, and uninstall keeping (or removing) the CRD.

kwok marks the chart's operator pod Running without running it, so the operator itself runs here as
a local process with the Deployment's args and environment and a token of the chart's ServiceAccount.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_operator.api.constants import CRD_NAME
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import NotYet, wait_for
from tests.e2e.conftest import (
    CHART,
    EXAMPLES,
    OPT_IN_KEY,
    OPT_IN_LABEL,
    ChartOperator,
    get_json,
    helm,
    release_name,
    service_account_kubeconfig,
)
from tests.integration.conftest import install_crd

pytestmark = pytest.mark.sandbox
EXAMPLE = "mimo-fp8-h200"


def _restricted(sandbox: Sandbox, namespace: str) -> None:
    sandbox.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    # Prove the label is enforced (the PodSecurity admission plugin is on by default): a root pod
    # is refused, so the operator pod's admission below means something.
    proc = sandbox.kubectl(
        "-n", namespace, "run", "root-probe", "--image=busybox", "--dry-run=server", "--restart=Never",
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "violates PodSecurity" in proc.stderr, proc.stderr


def _operator_pod_admitted(sandbox: Sandbox, namespace: str, release: str) -> dict[str, Any]:
    """Every replica of the operator Deployment (2 by default: leader and standby) Running."""
    replicas = get_json(sandbox, "-n", namespace, "get", "deployment", release)["spec"]["replicas"]

    def running() -> Any:
        pods = get_json(
            sandbox, "-n", namespace, "get", "pods", "-l", f"app.kubernetes.io/instance={release}"
        )
        phases = [p["status"].get("phase") for p in pods["items"]]
        return pods["items"][0] if phases == ["Running"] * replicas else NotYet(phases)

    pod: dict[str, Any] = wait_for(running, timeout=60, description=f"{release} operator pods Running")
    return pod


def _wait_ready(sandbox: Sandbox, namespace: str, name: str, operator: ChartOperator) -> Any:
    def check() -> Any:
        obj = get_json(sandbox, "-n", namespace, "get", "mimo", name)
        status = obj.get("status", {})
        done = (
            status.get("phase") == "Ready"
            and status.get("observedGeneration") == obj["metadata"]["generation"]
        )
        return obj if done else NotYet(status.get("phase"))

    try:
        return wait_for(check, timeout=90, description=f"{name} Ready")
    except BaseException:
        print(operator.log())
        raise


# A refusal shows as HTTP status 403 or the API server's "forbidden" wording. The status is matched as a
# number of its own: a bare "403" also occurs inside timestamps ("18:24:35.410403") of harmless log lines.
_REFUSAL = re.compile(r"(?<![\d.:])403(?!\d)|[Ff]orbidden|[Nn]ot enough permissions")


def _forbidden_lines(log: str) -> list[str]:
    """Log lines where the API server refused the operator; the access log of the operator's own health and
    metrics server (requests made *to* it, with sizes and times that may contain 403) is not about RBAC."""
    return [line for line in log.splitlines() if _REFUSAL.search(line) and '"remote_address"' not in line]


def _can_i(sandbox: Sandbox, kubeconfig: Path, *args: str) -> bool:
    proc = subprocess.run(
        [str(sandbox.bins.kubectl), f"--kubeconfig={kubeconfig}", "auth", "can-i", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.stdout.strip() == "yes"


def _kubectl_with(sandbox: Sandbox, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(sandbox.bins.kubectl), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _helm_test_script(sandbox: Sandbox, namespace: str, release: str) -> tuple[list[str], dict[str, str]]:
    """The `helm test` pod's command and environment, as the chart renders them."""
    out = helm(sandbox, "get", "hooks", release, "-n", namespace).stdout
    (pod,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Pod"]
    (container,) = pod["spec"]["containers"]
    return container["command"] + container["args"], {e["name"]: e["value"] for e in container["env"]}


def test_chart_operator_reconciles_to_ready_with_only_the_charts_rbac(
    sandbox: Sandbox,
    mimo_crd: str,
    namespace: str,
    install_chart: Callable[..., str],
    workload_namespace: str,
    tmp_path: Path,
) -> None:
    _restricted(sandbox, namespace)
    release = install_chart()
    pod = _operator_pod_admitted(sandbox, namespace, release)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    kubeconfig = service_account_kubeconfig(sandbox, namespace, release, tmp_path / "operator.kubeconfig")
    operator = ChartOperator(sandbox, namespace, release, kubeconfig, tmp_path / "operator.log").start()
    try:
        assert "--all-namespaces" in operator.container()["args"]
        work = workload_namespace
        sandbox.kubectl("-n", work, "apply", "-f", str(EXAMPLES / f"{EXAMPLE}.yaml"))
        obj = _wait_ready(sandbox, work, EXAMPLE, operator)
        assert obj["status"]["plan"]["gpusPerReplica"] == 4
        sts = get_json(sandbox, "-n", work, "get", "statefulset", EXAMPLE)
        assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "vllm/vllm-openai:v0.33.0"
        events = get_json(
            sandbox, "-n", work, "get", "events", "--field-selector", f"involvedObject.name={EXAMPLE}"
        )
        assert "Ready" in {e["reason"] for e in events["items"]}  # posted by the operator: events create

        # The `helm test` hook's own script, run against this operator (kwok never runs the pod).
        command, env = _helm_test_script(sandbox, namespace, release)
        env["HEALTHZ_URL"] = f"http://127.0.0.1:{operator.liveness_port}/healthz"
        env["METRICS_URL"] = f"http://127.0.0.1:{operator.metrics_port}/metrics"
        env["DEADLINE_SECONDS"] = "10"
        assert command[:2] == ["python", "-c"]
        check = subprocess.run(
            [sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert check.returncode == 0, check.stderr
        assert check.stdout.count("ok: ") == 2
    finally:
        operator.stop()

    # Nothing the operator (or kopf) asked for was refused.
    assert _forbidden_lines(operator.log()) == []

    # Least privilege, checked by the API server: no Secrets, no Pods, no exec, no spec writes.
    assert _can_i(sandbox, kubeconfig, "patch", "statefulsets", "-n", work)
    for verb, resource in [
        ("get", "secrets"),
        ("list", "secrets"),
        ("get", "pods"),
        ("delete", "pods"),
        ("create", "pods/exec"),
        ("get", "pods/log"),
        ("patch", "mimodeployments.serving.mimo.dev"),
        ("delete", "mimodeployments.serving.mimo.dev"),
        ("list", "nodes"),
    ]:
        assert not _can_i(sandbox, kubeconfig, verb, resource, "-n", work), f"{verb} {resource}"
    secrets = _kubectl_with(sandbox, kubeconfig, "-n", work, "get", "secrets")
    assert secrets.returncode != 0 and "Forbidden" in secrets.stderr


def test_namespaced_mode_cannot_reach_other_namespaces(
    sandbox: Sandbox,
    mimo_crd: str,
    namespace: str,
    install_chart: Callable[..., str],
    workload_namespace: str,
    tmp_path: Path,
) -> None:
    _restricted(sandbox, namespace)
    work = workload_namespace
    release = install_chart("--set", f"rbac.namespaces={{{work}}}")
    _operator_pod_admitted(sandbox, namespace, release)
    # Nothing cluster-wide for the operator: no ClusterRoleBinding at all, and the only ClusterRoles are
    # the unbound roles for people (aggregation needs ClusterRoles), which grant MimoDeployments only.
    of_release = ("-l", f"app.kubernetes.io/instance={release}")
    assert get_json(sandbox, "get", "clusterrolebindings", *of_release)["items"] == []
    cluster_roles = get_json(sandbox, "get", "clusterroles", *of_release)["items"]
    components = {r["metadata"]["labels"].get("app.kubernetes.io/component") for r in cluster_roles}
    assert components == {"user-access"}
    api_groups = {g for r in cluster_roles for rule in r["rules"] for g in rule["apiGroups"]}
    assert api_groups == {"serving.mimo.dev"}

    kubeconfig = service_account_kubeconfig(sandbox, namespace, release, tmp_path / "operator.kubeconfig")
    operator = ChartOperator(sandbox, namespace, release, kubeconfig, tmp_path / "operator.log").start()
    try:
        assert f"--namespace={work}" in operator.container()["args"]
        sandbox.kubectl("-n", work, "apply", "-f", str(EXAMPLES / f"{EXAMPLE}.yaml"))
        _wait_ready(sandbox, work, EXAMPLE, operator)
    finally:
        operator.stop()
    # kopf would list namespaces and CRDs; both are cluster-wide and deliberately not granted, and
    # nothing else was refused.
    cluster_scoped = re.compile(
        r'cannot (list|watch) resource \\?"(namespaces|customresourcedefinitions)\\?"|Not enough permissions'
    )
    refused = [line for line in _forbidden_lines(operator.log()) if not cluster_scoped.search(line)]
    assert refused == [], "\n".join(refused)

    assert _can_i(sandbox, kubeconfig, "list", "statefulsets", "-n", work)
    for other in (namespace, "default", "kube-system"):
        assert not _can_i(sandbox, kubeconfig, "list", "statefulsets", "-n", other)
        assert not _can_i(sandbox, kubeconfig, "list", "mimodeployments.serving.mimo.dev", "-n", other)
        listed = _kubectl_with(sandbox, kubeconfig, "-n", other, "get", "statefulsets")
        assert listed.returncode != 0 and "Forbidden" in listed.stderr
    assert not _can_i(sandbox, kubeconfig, "list", "statefulsets", "--all-namespaces")


def _probe_service(sandbox: Sandbox, kubeconfig: Path, namespace: str) -> subprocess.CompletedProcess[str]:
    """A Service the ClusterRole lets the operator create, sent with the given credentials as a
    server-side dry run: authorised and admitted exactly like a real create, and nothing is left."""
    return _kubectl_with(
        sandbox, kubeconfig, "-n", namespace, "create", "service", "clusterip", "write-scope-probe",
        "--tcp=80", "--dry-run=server",
    )  # fmt: skip


def _refused_with(sandbox: Sandbox, kubeconfig: Path, namespace: str, words: str) -> str:
    """Wait until the API server refuses the probe with these words (a new policy takes a moment to
    reach the API server's admission); the refusal's text."""

    def refused() -> Any:
        proc = _probe_service(sandbox, kubeconfig, namespace)
        return proc.stderr if proc.returncode != 0 and words in proc.stderr else NotYet(proc.stderr)

    text: str = wait_for(refused, timeout=30, description=f"the probe refused in {namespace}")
    return text


def test_cluster_wide_operator_writes_only_in_namespaces_that_opted_in(
    sandbox: Sandbox,
    mimo_crd: str,
    namespace: str,
    install_chart: Callable[..., str],
    workload_namespace: str,
    tmp_path: Path,
) -> None:
    work = workload_namespace
    sandbox.kubectl("label", "namespace", work, f"{OPT_IN_KEY}-")  # not opted in (yet)
    release = install_chart()
    _operator_pod_admitted(sandbox, namespace, release)
    kubeconfig = service_account_kubeconfig(sandbox, namespace, release, tmp_path / "operator.kubeconfig")

    # RBAC alone grants the write everywhere (it cannot select namespaces by label) ...
    for where in ("kube-system", work):
        assert _can_i(sandbox, kubeconfig, "create", "services", "-n", where)
    # ... the chart's ValidatingAdmissionPolicy refuses it with the ServiceAccount's real token.
    protected = _refused_with(sandbox, kubeconfig, "kube-system", "is protected from the mimo-operator")
    assert "ValidatingAdmissionPolicy" in protected and "forbidden" in protected
    not_enabled = _refused_with(sandbox, kubeconfig, work, "has not opted in to the mimo-operator")
    assert f"kubectl label namespace {work} {OPT_IN_LABEL}" in not_enabled
    # A protected namespace stays refused when labelled; other users are not touched by the policy.
    sandbox.kubectl("label", "namespace", "kube-system", OPT_IN_LABEL)
    try:
        assert _probe_service(sandbox, kubeconfig, "kube-system").returncode != 0
    finally:
        sandbox.kubectl("label", "namespace", "kube-system", f"{OPT_IN_KEY}-")
    assert _probe_service(sandbox, sandbox.kubeconfig, work).returncode == 0

    operator = ChartOperator(sandbox, namespace, release, kubeconfig, tmp_path / "operator.log").start()
    try:
        # A MimoDeployment where the operator may not write: Failed with the way out, and no child.
        sandbox.kubectl("-n", work, "apply", "-f", str(EXAMPLES / f"{EXAMPLE}.yaml"))

        def refused() -> Any:
            status = get_json(sandbox, "-n", work, "get", "mimo", EXAMPLE).get("status", {})
            return status if status.get("phase") == "Failed" else NotYet(status.get("phase"))

        status = wait_for(refused, timeout=60, description=f"{EXAMPLE} refused by the write scope")
        planned = next(c for c in status["conditions"] if c["type"] == "Planned")
        assert planned["reason"] == "NamespaceNotEnabled", planned
        assert f"kubectl label namespace {work} {OPT_IN_LABEL}" in planned["message"]
        for kind in ("statefulsets", "services", "jobs", "networkpolicies", "poddisruptionbudgets"):
            assert get_json(sandbox, "-n", work, "get", kind)["items"] == [], kind

        # The administrator opts the namespace in: the next retry deploys, with nothing else done.
        sandbox.kubectl("label", "namespace", work, OPT_IN_LABEL)
        _wait_ready(sandbox, work, EXAMPLE, operator)
        assert _probe_service(sandbox, kubeconfig, work).returncode == 0
    finally:
        operator.stop()


def test_upgrade_with_a_new_vllm_image_rolls_the_deployments(
    sandbox: Sandbox,
    mimo_crd: str,
    namespace: str,
    install_chart: Callable[..., str],
    workload_namespace: str,
    tmp_path: Path,
) -> None:
    work = workload_namespace
    release = install_chart("--set", f"rbac.namespaces={{{work}}}")
    kubeconfig = service_account_kubeconfig(sandbox, namespace, release, tmp_path / "operator.kubeconfig")
    operator = ChartOperator(sandbox, namespace, release, kubeconfig, tmp_path / "operator.log").start()
    try:
        sandbox.kubectl("-n", work, "apply", "-f", str(EXAMPLES / f"{EXAMPLE}.yaml"))
        _wait_ready(sandbox, work, EXAMPLE, operator)
    finally:
        operator.stop()

    mirror = "registry.example.com/vllm/vllm-openai:v0.33.0"
    helm(sandbox, "upgrade", release, str(CHART), "-n", namespace, "--reuse-values",
         "--set", f"operator.vllmImage={mirror}", "--set", "operator.logFormat=text")  # fmt: skip
    env = {
        e["name"]: e.get("value")
        for e in ChartOperator(sandbox, namespace, release, kubeconfig, tmp_path).container()["env"]
    }
    assert env["MIMO_OPERATOR_VLLM_IMAGE"] == mirror
    assert helm(sandbox, "history", release, "-n", namespace, "-o", "json").stdout.count('"revision"') == 2

    # The upgraded operator (the Deployment's new args and env) moves the StatefulSet to the mirror.
    operator = ChartOperator(sandbox, namespace, release, kubeconfig, tmp_path / "operator2.log").start()
    try:
        assert "--log-format=text" in operator.container()["args"]

        def moved() -> Any:
            sts = get_json(sandbox, "-n", work, "get", "statefulset", EXAMPLE)
            image = sts["spec"]["template"]["spec"]["containers"][0]["image"]
            return image == mirror or NotYet(image)

        wait_for(moved, timeout=60, description="StatefulSet on the upgraded vllmImage")
    finally:
        operator.stop()
    helm(sandbox, "uninstall", release, "-n", namespace, "--wait")
    assert get_json(sandbox, "-n", work, "get", "roles")["items"] == []


def _crd_exists(sandbox: Sandbox) -> bool:
    return sandbox.kubectl("get", "crd", CRD_NAME, check=False).returncode == 0


def test_uninstall_keeps_the_crd_with_keep_and_removes_it_without(
    sandbox: Sandbox, namespace: str, tmp_path: Path
) -> None:
    """Last in the module: it deletes the CRD (and so every MimoDeployment) and puts it back after."""
    try:
        sandbox.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true", "--timeout=60s")
        release = release_name()
        helm(sandbox, "install", release, str(CHART), "-n", namespace, "--wait", "--timeout=60s")
        sandbox.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
        sandbox.kubectl("-n", namespace, "apply", "-f", str(EXAMPLES / "mimo-infeasible.yaml"))
        helm(sandbox, "uninstall", release, "-n", namespace, "--wait")
        assert _crd_exists(sandbox), "crds.keep=true (the default) must leave the CRD"
        assert sandbox.kubectl("-n", namespace, "get", "mimo", "mimo-infeasible", check=False).returncode == 0

        # A kept CRD still says which release made it, so the next release cannot adopt it: the
        # documented way back is to delete it by hand (or keep crds.enabled=false from then on).
        release = release_name()
        refused = helm(sandbox, "install", release, str(CHART), "-n", namespace, check=False)
        assert refused.returncode != 0 and "exists and cannot be imported" in refused.stderr
        sandbox.kubectl("delete", "crd", CRD_NAME, "--wait=true", "--timeout=60s")

        helm(sandbox, "install", release, str(CHART), "-n", namespace, "--set", "crds.keep=false", "--wait")
        sandbox.kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{CRD_NAME}")
        helm(sandbox, "uninstall", release, "-n", namespace, "--wait")
        wait_for(lambda: not _crd_exists(sandbox), timeout=60, description="CRD removed with crds.keep=false")
    finally:
        install_crd(sandbox)
    assert (
        json.loads(sandbox.kubectl("get", "crd", CRD_NAME, "-o", "json").stdout)["metadata"]["name"]
        == CRD_NAME
    )


def test_namespace_users_get_mimodeployments_through_the_built_in_roles(
    sandbox: Sandbox,
    mimo_crd: str,
    namespace: str,
    install_chart: Callable[..., str],
    workload_namespace: str,
    tmp_path: Path,
) -> None:
    """Bound only to the built-in `edit` or `view` ClusterRole in their namespace, as a cluster admin
    grants namespace users, people get MimoDeployment access from the chart's aggregated roles; the API
    server's RBAC decides, with each person's own token."""
    install_chart()
    work = workload_namespace
    people = {}
    for person, role in (("editor", "edit"), ("viewer", "view")):
        sandbox.kubectl("-n", work, "create", "serviceaccount", person)
        account = f"--serviceaccount={work}:{person}"
        sandbox.kubectl("-n", work, "create", "rolebinding", person, f"--clusterrole={role}", account)
        people[person] = service_account_kubeconfig(sandbox, work, person, tmp_path / f"{person}.kubeconfig")
    editor, viewer = people["editor"], people["viewer"]

    # The controller manager's aggregation controller copies the chart's rules into edit and view.
    wait_for(
        lambda: _can_i(sandbox, editor, "create", "mimodeployments.serving.mimo.dev", "-n", work),
        timeout=60,
        description="edit to include MimoDeployments",
    )
    created = _kubectl_with(sandbox, editor, "-n", work, "apply", "-f", str(EXAMPLES / f"{EXAMPLE}.yaml"))
    assert created.returncode == 0, created.stderr
    scaled = _kubectl_with(sandbox, editor, "-n", work, "scale", f"mimo/{EXAMPLE}", "--replicas=2")
    assert scaled.returncode == 0, scaled.stderr
    # Status is the operator's alone, for editors too.
    status = _kubectl_with(
        sandbox, editor, "-n", work, "patch", "mimo", EXAMPLE, "--subresource=status", "--type=merge",
        "-p", '{"status":{"phase":"Ready"}}',
    )  # fmt: skip
    assert status.returncode != 0 and "forbidden" in status.stderr, status.stderr

    wait_for(
        lambda: _can_i(sandbox, viewer, "list", "mimodeployments.serving.mimo.dev", "-n", work),
        timeout=60,
        description="view to include MimoDeployments",
    )
    listed = _kubectl_with(sandbox, viewer, "-n", work, "get", "mimo", "-o", "name")
    assert listed.stdout.split() == [f"mimodeployment.serving.mimo.dev/{EXAMPLE}"], listed.stderr
    refused = _kubectl_with(sandbox, viewer, "-n", work, "delete", "mimo", EXAMPLE)
    assert refused.returncode != 0 and "forbidden" in refused.stderr, refused.stderr
    # Nothing beyond the namespace they were granted.
    assert not _can_i(sandbox, editor, "create", "mimodeployments.serving.mimo.dev", "-n", namespace)


def _raw_patch(kubeconfig: Path, path: str, patch: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """A merge PATCH with the kubeconfig's token; the API server's answer as a CompletedProcess
    (returncode 0 for 2xx, the Status message as stderr otherwise)."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    context = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    request = urllib.request.Request(
        cluster["server"] + path,
        data=json.dumps(patch).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {user['token']}", "Content-Type": "application/merge-patch+json"},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return subprocess.CompletedProcess([path], 0, response.read().decode(), "")
    except urllib.error.HTTPError as exc:
        return subprocess.CompletedProcess([path], 1, "", json.loads(exc.read()).get("message", ""))


def test_the_operator_may_label_nodes_only_under_its_prefix_and_only_with_host_path_allowed(
    sandbox: Sandbox, mimo_crd: str, namespace: str, install_chart: Callable[..., str], tmp_path: Path
) -> None:
    node = sandbox.kubectl(
        "get", "nodes", "-l", "type=kwok", "-o", "jsonpath={.items[0].metadata.name}"
    ).stdout
    plain = install_chart()
    plain_config = service_account_kubeconfig(sandbox, namespace, plain, tmp_path / "plain.kubeconfig")
    # Without policy.allowHostPath no node-local cache can exist, and the operator has no node rights.
    assert not _can_i(sandbox, plain_config, "list", "nodes")
    assert not _can_i(sandbox, plain_config, "patch", "nodes")

    release = install_chart("--set", "policy.allowHostPath=true")
    kubeconfig = service_account_kubeconfig(sandbox, namespace, release, tmp_path / "operator.kubeconfig")
    assert _can_i(sandbox, kubeconfig, "list", "nodes") and _can_i(sandbox, kubeconfig, "patch", "nodes")

    def as_operator(patch: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        # A PATCH as the operator sends it (a merge patch, no GET first: kubectl patch would read the
        # node first, which the operator may not), judged by admission and dropped (dryRun).
        return _raw_patch(kubeconfig, f"/api/v1/nodes/{node}?dryRun=All", patch)

    def labels(**values: str | None) -> dict[str, Any]:
        return {"metadata": {"labels": values}}

    # RBAC grants "patch nodes"; the chart's ValidatingAdmissionPolicy narrows it to the copy labels.
    def refused_foreign_label() -> Any:
        proc = as_operator(labels(**{"mimo-probe": "x"}))
        return proc.stderr if proc.returncode != 0 else NotYet(proc.stdout)

    text = wait_for(refused_foreign_label, timeout=30, description="a foreign node label refused")
    assert "only change node labels under weights.serving.mimo.dev/" in text, text
    allowed = as_operator(labels(**{"weights.serving.mimo.dev/0123456789abcdef": "complete"}))
    assert allowed.returncode == 0, allowed.stderr
    for patch, words in (
        ({"spec": {"unschedulable": True}}, "may not change a node's spec"),
        ({"spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}}, "may not change a node's spec"),
        ({"metadata": {"annotations": {"mimo-probe": "x"}}}, "may not change a node's spec"),
        (labels(type=None), "only change node labels under"),
    ):
        proc = as_operator(patch)
        assert proc.returncode != 0 and words in proc.stderr, (patch, proc.stderr)
    deleted = _kubectl_with(sandbox, kubeconfig, "delete", "node", node, "--dry-run=server")
    assert deleted.returncode != 0 and "forbidden" in deleted.stderr, deleted.stderr
    # Anyone else is not judged by it.
    admin = sandbox.kubectl("label", "node", node, "mimo-probe=x", "--dry-run=server", check=False)
    assert admin.returncode == 0, admin.stderr
