"""The Helm chart, rendered by the real helm (from the sandbox build; no cluster needed): lint, both
RBAC modes, the schema refusing typos and wrong types, and the CRD it installs being the committed one."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_operator.api.constants import NODE_COPY_LABEL_PREFIX
from mimo_operator.api.policy import AuthorPolicy, image_repository
from mimo_operator.handlers.reconcile import refusal
from mimo_operator.handlers.settings import OperatorSettings
from mimo_operator.kube.client import ApiError
from mimo_operator.render.config import DEFAULT_API_PEERS
from mimo_sandbox.build import ensure_binaries
from tests.unit.test_render_network_policy import (
    NAMESPACE,
    Pod,
    admits,
    golden_deployment,
    matches,
    policies_of,
    rendered,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mimo-operator"
CRD = REPO / "crds" / "mimodeployments.serving.mimo.dev.yaml"
NAMESPACED = ["--set", "rbac.namespaces={team-a,team-b}"]


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_binaries().helm


def run_helm(helm: Path, *args: str, values: str | None = None, tmp_path: Path | None = None) -> Any:
    cmd = [str(helm), *args]
    if values is not None:
        assert tmp_path is not None
        path = tmp_path / "values.yaml"
        path.write_text(values)
        cmd += ["-f", str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    proc = run_helm(helm, "template", "mimo-operator", str(CHART), "-n", "mimo-system", *args)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def find(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _named(docs: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["metadata"]["name"].endswith(suffix)]


def _user_access(doc: dict[str, Any]) -> bool:
    return bool(doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "user-access")


def operator_roles(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The operator's own (Cluster)Roles, not the ones the chart ships for people."""
    return [d for d in find(docs, kind) if not _user_access(d)]


@pytest.mark.parametrize("extra", [[], NAMESPACED], ids=["cluster-wide", "namespaced"])
def test_lint_strict_passes(helm: Path, extra: list[str]) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART), *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cluster_wide_mode_grants_a_cluster_role_and_runs_all_namespaces(helm: Path) -> None:
    docs = render(helm)
    assert [d["metadata"]["name"] for d in operator_roles(docs, "ClusterRole")] == ["mimo-operator"]
    # The only namespaced Role is leader election's, for the Lease in the release namespace.
    assert [d["metadata"]["name"] for d in find(docs, "Role")] == ["mimo-operator-leader-election"]
    container = find(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:2] == ["run", "--all-namespaces"]
    assert "--log-format=json" in container["args"]


def test_cluster_wide_writes_are_scoped_by_an_admission_policy_on_the_operators_account(helm: Path) -> None:
    docs = render(helm)
    (policy,) = _named(find(docs, "ValidatingAdmissionPolicy"), "-write-scope")
    (binding,) = _named(find(docs, "ValidatingAdmissionPolicyBinding"), "-write-scope")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"] and "matchResources" not in binding["spec"]
    spec = policy["spec"]
    assert spec["failurePolicy"] == "Fail"
    (rule,) = spec["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["*/*"] and rule["operations"] == ["CREATE", "UPDATE", "DELETE"]
    # Only the ServiceAccount the ClusterRole is bound to; nobody else's writes are evaluated.
    (subject,) = find(docs, "ClusterRoleBinding")[0]["subjects"]
    account = f"system:serviceaccount:{subject['namespace']}:{subject['name']}"
    assert spec["matchConditions"][0]["expression"] == f"request.userInfo.username == {json.dumps(account)}"
    protected, opt_in = spec["validations"]
    assert '["kube-system","kube-public","kube-node-lease"]' in protected["expression"]
    assert '"serving.mimo.dev/operator"' in opt_in["expression"] and '== "enabled"' in opt_in["expression"]
    # The operator tells the two refusals apart by the policy's own words.
    for validation, reason in ((protected, "NamespaceProtected"), (opt_in, "NamespaceNotEnabled")):
        words = validation["messageExpression"].replace('"', "")
        assert refusal(ApiError(403, "PATCH", "/x", {"message": words}), "a child")[0] == reason


@pytest.mark.parametrize(
    ("values", "validations"),
    [
        (["--set", "rbac.writeScope.optInLabel.key="], 1),
        (["--set-json", "rbac.writeScope.protectedNamespaces=[]"], 1),
        (
            [
                "--set",
                "rbac.writeScope.optInLabel.key=",
                "--set-json",
                "rbac.writeScope.protectedNamespaces=[]",
            ],
            0,
        ),
        (NAMESPACED, 0),
    ],
    ids=["no-opt-in", "nothing-protected", "off", "namespaced"],
)
def test_write_scope_has_a_rule_per_setting_and_is_absent_when_off(
    helm: Path, values: list[str], validations: int
) -> None:
    policies = _named(find(render(helm, *values), "ValidatingAdmissionPolicy"), "-write-scope")
    assert sum(len(p["spec"]["validations"]) for p in policies) == validations
    assert len(policies) == (1 if validations else 0)


def test_author_policy_at_apply_lists_repositories_normalised_like_the_operator(helm: Path) -> None:
    """The chart normalises the allowed images in Go templates, the operator in Python: the same
    repositories. (Whether the API server then refuses what the operator refuses: tests/e2e.)"""
    entries = ["vllm/vllm-openai", "ubuntu", "docker.io/library/ubuntu:22.04", "localhost:5000/a/b:1",
               "registry:5000/ml/vllm@sha256:" + "b" * 64, "registry.local/", "myorg/"]  # fmt: skip
    docs = render(helm, "--set", f"policy.allowedImages={{{','.join(entries)}}}")
    (policy,) = _named(find(docs, "ValidatingAdmissionPolicy"), "-author-policy")
    image_rule = policy["spec"]["validations"][0]["expression"]
    listed = yaml.safe_load(image_rule.split(" in ", 1)[1].split("]", 1)[0] + "]")
    prefixes = yaml.safe_load("[" + image_rule.split("|| [", 1)[1].split("]", 1)[0] + "]")
    configured = find(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    vllm_image = next(e["value"] for e in configured if e["name"] == "MIMO_OPERATOR_VLLM_IMAGE")
    plain = [e for e in entries if not e.endswith("/")] + [vllm_image]
    assert listed == [image_repository(e) for e in plain]
    assert prefixes == [image_repository(e + "x").removesuffix("x") for e in entries if e.endswith("/")]


@pytest.mark.parametrize(
    ("values", "namespaces"),
    [([], None), (NAMESPACED, ["team-a", "team-b"]), (["--set", "policy.enforceAtApply=false"], "absent")],
    ids=["cluster-wide", "namespaced", "off"],
)
def test_author_policy_at_apply_judges_the_namespaces_the_release_serves(
    helm: Path, values: list[str], namespaces: Any
) -> None:
    bindings = _named(find(render(helm, *values), "ValidatingAdmissionPolicyBinding"), "-author-policy")
    if namespaces == "absent":
        assert bindings == []
        return
    (binding,) = bindings
    selector = binding["spec"].get("matchResources", {}).get("namespaceSelector")
    if namespaces is None:
        assert selector is None
    else:
        assert selector == {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": namespaces}
            ]
        }


def test_namespaced_mode_grants_a_role_per_namespace_and_nothing_cluster_wide(helm: Path) -> None:
    docs = render(helm, *NAMESPACED)
    assert not operator_roles(docs, "ClusterRole") and not find(docs, "ClusterRoleBinding")
    for kind in ("Role", "RoleBinding"):
        assert sorted((r["metadata"]["namespace"], r["metadata"]["name"]) for r in find(docs, kind)) == [
            ("mimo-system", "mimo-operator-leader-election"),
            ("team-a", "mimo-operator"),
            ("team-b", "mimo-operator"),
        ]
    args = find(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" not in args
    assert "--namespace=team-a" in args and "--namespace=team-b" in args


def test_rbac_has_no_wildcards_and_never_touches_secrets_or_pods(helm: Path) -> None:
    for extra in ([], NAMESPACED):
        docs = render(helm, *extra)
        for role in operator_roles(docs, "ClusterRole") + find(docs, "Role"):
            for rule in role["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], rule
                assert not {"secrets", "pods/exec", "pods/log", "configmaps"} & set(rule["resources"]), rule
                if "pods" in rule["resources"]:
                    assert rule["verbs"] == ["list"], rule
                # update only where it grants no write on any object (finalizers) or on the one Lease
                # leader election renews, named.
                assert (
                    not {"update", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"])
                    or rule["resources"] == ["mimodeployments/finalizers"]
                    or (rule["resources"] == ["leases"] and rule.get("resourceNames") == ["mimo-operator"])
                ), rule


def test_user_roles_aggregate_into_view_edit_and_admin_and_never_write_status(helm: Path) -> None:
    roles = {d["metadata"]["name"]: d for d in find(render(helm), "ClusterRole") if _user_access(d)}
    assert sorted(roles) == ["mimo-operator-admin", "mimo-operator-edit", "mimo-operator-view"]
    aggregates = {
        name: sorted(
            key.rsplit("aggregate-to-", 1)[1]
            for key, value in role["metadata"]["labels"].items()
            if "aggregate-to-" in key and value == "true"
        )
        for name, role in roles.items()
    }
    # view's read rules reach edit and admin too, as the built-in roles are layered.
    assert aggregates == {
        "mimo-operator-view": ["admin", "edit", "view"],
        "mimo-operator-edit": ["admin", "edit"],
        "mimo-operator-admin": ["admin"],
    }
    for name, role in roles.items():
        for rule in role["rules"]:
            assert rule["apiGroups"] == ["serving.mimo.dev"] and "*" not in rule["verbs"], (name, rule)
            writes = set(rule["verbs"]) - {"get", "list", "watch"}
            assert not (writes and "mimodeployments/status" in rule["resources"]), (name, rule)
    assert not any(_user_access(d) for d in render(helm, "--set", "userRoles.create=false"))
    plain = [d for d in render(helm, "--set", "userRoles.aggregate=false") if _user_access(d)]
    assert len(plain) == 3 and not any("aggregate-to-" in str(d["metadata"]["labels"]) for d in plain)


def test_the_rendered_crd_is_the_committed_crd_plus_helm_metadata(helm: Path) -> None:
    assert (CHART / "files" / "crd.yaml").read_bytes() == CRD.read_bytes(), "run `make chart-crd`"
    (rendered,) = find(render(helm), "CustomResourceDefinition")
    committed = next(d for d in yaml.safe_load_all(CRD.read_text()) if d)
    assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert rendered["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    del rendered["metadata"]["annotations"], rendered["metadata"]["labels"]
    assert rendered == committed


def test_crds_keep_false_drops_the_keep_policy_and_crds_disabled_drops_the_crd(helm: Path) -> None:
    (crd,) = find(render(helm, "--set", "crds.keep=false"), "CustomResourceDefinition")
    assert "annotations" not in crd["metadata"]
    assert not find(render(helm, "--set", "crds.enabled=false"), "CustomResourceDefinition")


def test_operator_pod_meets_the_restricted_pod_security_standard(helm: Path) -> None:
    pod = find(render(helm), "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    ctx = container["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]} and ctx["runAsUser"] >= 10000
    assert {v["name"] for v in pod["volumes"]} == {"tmp"}


def test_operator_settings_and_image_come_from_values(helm: Path) -> None:
    docs = render(helm, "--set", "operator.vllmImage=registry.local/vllm:v1", "--set", "image.tag=9.9.9")
    (container,) = find(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["MIMO_OPERATOR_VLLM_IMAGE"] == "registry.local/vllm:v1"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert container["image"] == "mimo-operator:9.9.9"
    # The weights download Jobs run the fetcher shipped in the operator's image: the same image by default.
    assert env["MIMO_OPERATOR_FETCHER_IMAGE"] == "mimo-operator:9.9.9"
    default = find(render(helm), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert default["image"] == "mimo-operator:0.1.0"  # the chart's appVersion
    pinned = render(helm, "--set", "image.digest=sha256:" + "a" * 64, "--set", "operator.fetcherImage=")
    (pinned_container,) = find(pinned, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    pinned_env = {e["name"]: e.get("value") for e in pinned_container["env"]}
    assert (
        pinned_env["MIMO_OPERATOR_FETCHER_IMAGE"]
        == pinned_container["image"]
        == "mimo-operator@sha256:" + "a" * 64
    )
    own = render(helm, "--set", "operator.fetcherImage=registry.local/fetcher:2")
    (own_container,) = find(own, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e.get("value") for e in own_container["env"]}["MIMO_OPERATOR_FETCHER_IMAGE"] == (
        "registry.local/fetcher:2"
    )


def _settings_from_chart(helm: Path, *args: str, monkeypatch: pytest.MonkeyPatch) -> OperatorSettings:
    """The operator's settings as the rendered Deployment's MIMO_OPERATOR_* environment makes them."""
    (container,) = find(render(helm, *args), "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    for variable in container["env"]:
        if variable["name"].startswith("MIMO_OPERATOR_"):
            monkeypatch.setenv(variable["name"], variable["value"])
    return OperatorSettings(namespaces=["ns"])


def test_vllm_network_policy_values_reach_the_operators_render_config(
    helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = _settings_from_chart(helm, monkeypatch=monkeypatch).render_config()
    assert default.network_policy_api_from == DEFAULT_API_PEERS
    team = '{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"team-b"}}}'
    values = ("--set-json", f"vllmNetworkPolicy.apiFrom=[{team}]")
    assert _settings_from_chart(
        helm, *values, monkeypatch=monkeypatch
    ).render_config().network_policy_api_from == (
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}}},
    )
    off = _settings_from_chart(helm, "--set", "vllmNetworkPolicy.enabled=false", monkeypatch=monkeypatch)
    assert off.render_config().network_policy_api_from is None
    # A peer the schema does not know is refused at install, not at the first reconcile.
    refused = run_helm(
        helm, "template", "mimo-operator", str(CHART), "--set-json", 'vllmNetworkPolicy.apiFrom=[{"pods":{}}]'
    )
    assert refused.returncode != 0 and "apiFrom" in refused.stderr


def test_author_policy_values_reach_the_operator(helm: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _settings_from_chart(helm, monkeypatch=monkeypatch).author_policy() == AuthorPolicy()
    values = (
        "--set-json", 'policy.allowedImages=["registry.local/"]',
        "--set", "policy.allowHostPath=true",
        "--set", "policy.allowEnvSecrets=true",
        "--set-json", 'policy.allowedPriorityClasses=["llm-serving"]',
    )  # fmt: skip
    assert _settings_from_chart(helm, *values, monkeypatch=monkeypatch).author_policy() == AuthorPolicy(
        allowed_images=("registry.local/",),
        allow_host_path=True,
        allow_env_secrets=True,
        allowed_priority_classes=("llm-serving",),
    )


def test_vllm_pods_run_as_the_images_user_unless_a_uid_is_set(
    helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _settings_from_chart(helm, monkeypatch=monkeypatch).render_config().vllm_run_as_user is None
    set_uid = ("--set", "vllmPods.runAsUser=1000")
    assert (
        _settings_from_chart(helm, *set_uid, monkeypatch=monkeypatch).render_config().vllm_run_as_user == 1000
    )
    refused = run_helm(helm, "template", "mimo-operator", str(CHART), "--set", "vllmPods.runAsUser=0")
    assert refused.returncode != 0 and "runAsUser" in refused.stderr


def test_optional_servicemonitor_and_networkpolicy_are_off_by_default(helm: Path) -> None:
    docs = render(helm)
    assert not find(docs, "ServiceMonitor") and not find(docs, "NetworkPolicy")
    docs = render(helm, "--set", "metrics.serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=true")
    assert find(docs, "ServiceMonitor")[0]["spec"]["endpoints"][0]["port"] == "metrics"
    assert find(docs, "NetworkPolicy")[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("rbca:\n  create: true\n", "additional properties 'rbca' not allowed"),
        ("replicaCount: two\n", "got string, want integer"),
        ("leaderElection:\n  enabled: false\nreplicaCount: 2\n", "maximum: got 2, want 1"),
        ("replicaCount: -1\n", "minimum: got -1, want 0"),
        ("operator:\n  vllmImag: x\n", "additional properties 'vllmImag' not allowed"),
        ("operator:\n  logFormat: xml\n", "value must be one of 'json', 'text'"),
        ("rbac:\n  namespaces: Team_A\n", "got string, want array"),
        ('crds:\n  keep: "yes"\n', "got string, want boolean"),
    ],
    ids=[
        "typo-top-level",
        "wrong-type",
        "two-without-election",
        "negative",
        "typo-nested",
        "bad-enum",
        "ns-not-list",
        "bool",
    ],
)
def test_schema_refuses_typos_and_wrong_types(helm: Path, tmp_path: Path, values: str, message: str) -> None:
    proc = run_helm(helm, "template", "mimo", str(CHART), values=values, tmp_path=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr


def _operator(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    (deployment,) = find(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def test_two_replicas_elect_a_leader_and_roll_without_a_gap_by_default(helm: Path) -> None:
    docs = render(helm)
    deployment, container = _operator(docs)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert "--leader-elect" in container["args"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["MIMO_OPERATOR_LEASE_NAME"] == "mimo-operator"
    (pdb,) = find(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_lease_rbac_is_create_plus_get_and_update_of_the_one_lease(helm: Path) -> None:
    docs = render(helm, "--set", "fullnameOverride=ops")
    (role,) = [r for r in find(docs, "Role") if r["metadata"]["name"] == "ops-leader-election"]
    assert role["metadata"]["namespace"] == "mimo-system"
    assert [(r["verbs"], r.get("resourceNames")) for r in role["rules"]] == [
        (["create"], None),
        (["get", "update"], ["ops"]),
    ]
    assert {g for r in role["rules"] for g in r["apiGroups"]} == {"coordination.k8s.io"}
    (binding,) = [b for b in find(docs, "RoleBinding") if b["metadata"]["name"] == "ops-leader-election"]
    assert binding["roleRef"]["name"] == "ops-leader-election"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ops", "namespace": "mimo-system"}]
    _, container = _operator(docs)
    assert {"name": "MIMO_OPERATOR_LEASE_NAME", "value": "ops"} in container["env"]


def test_one_replica_gets_no_pdb_that_would_block_drains(helm: Path) -> None:
    assert not find(render(helm, "--set", "replicaCount=1"), "PodDisruptionBudget")


def test_without_leader_election_one_replica_recreated_and_no_lease_rights(helm: Path) -> None:
    docs = render(helm, "--set", "leaderElection.enabled=false", "--set", "replicaCount=1")
    deployment, container = _operator(docs)
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--leader-elect" not in container["args"]
    assert not [r for r in find(docs, "Role") if "leader-election" in r["metadata"]["name"]]


def test_the_operator_may_read_a_download_pods_progress_and_the_pod_admits_only_it(
    helm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render(helm, "--set", "networkPolicy.enabled=true")
    (deployment,) = find(docs, "Deployment")
    operator = Pod("mimo-system", deployment["spec"]["template"]["metadata"]["labels"])
    config = _settings_from_chart(helm, monkeypatch=monkeypatch).render_config()
    md = golden_deployment()
    children = rendered(md, config)
    job = next(c for c in children if c["kind"] == "Job")
    fetcher = Pod(NAMESPACE, job["spec"]["template"]["metadata"]["labels"])
    port = job["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    # The deployment's NetworkPolicy lets the chart's operator pods in on the progress port ...
    assert admits(policies_of(children), operator, fetcher, port)
    assert not admits(policies_of(children), Pod("mimo-system", {"app": "other"}), fetcher, port)
    # ... and the operator's own NetworkPolicy lets it out to that port of such pods.
    (own,) = [p for p in find(docs, "NetworkPolicy") if p["metadata"]["namespace"] == "mimo-system"]
    out = [
        rule
        for rule in own["spec"]["egress"]
        if any(p["port"] == port for p in rule.get("ports", []))
        and any(
            "podSelector" in peer and matches(peer["podSelector"], fetcher.labels)
            for peer in rule.get("to", [])
        )
    ]
    assert out, own["spec"]["egress"]


def test_node_rights_come_only_with_host_path_and_are_held_to_the_copy_labels(helm: Path) -> None:
    def node_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        roles = find(docs, "ClusterRole") + find(docs, "Role")
        return [rule for role in roles for rule in role["rules"] if "nodes" in rule.get("resources", [])]

    assert node_rules(render(helm)) == []
    for mode in ((), ("--set-json", 'rbac.namespaces=["team-a"]')):
        docs = render(helm, "--set", "policy.allowHostPath=true", *mode)
        assert [rule["verbs"] for rule in node_rules(docs)] == [["list", "patch"]]
        (policy,) = [
            p
            for p in find(docs, "ValidatingAdmissionPolicy")
            if p["metadata"]["name"].endswith("node-copies")
        ]
        (binding,) = [
            b
            for b in find(docs, "ValidatingAdmissionPolicyBinding")
            if b["spec"]["policyName"] == policy["metadata"]["name"]
        ]
        assert binding["spec"]["validationActions"] == ["Deny"]
        (condition,) = policy["spec"]["matchConditions"]
        assert "system:serviceaccount:mimo-system:" in condition["expression"]
    # The prefix the policy allows is the one the operator writes.
    assert f"'{NODE_COPY_LABEL_PREFIX}'" in json.dumps(policy["spec"]["variables"])
