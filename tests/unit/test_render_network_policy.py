"""Who can reach a deployment's vLLM pods: the NetworkPolicy, read the way a CNI enforces it.

`admits` implements the NetworkPolicy semantics of networking.k8s.io/v1 that the rendered policies use
(matchLabels selectors, podSelector / namespaceSelector peers and their combination, numbered ports):
a connection is allowed when some policy selects the destination pod and one of its ingress rules
matches both the source and the port. The assertions are about connections, not the object's shape.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mimo_operator.api import SpecInvalid, constants, parse_mimo_deployment
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from tests.unit.kubelet import statefulset_pods
from tests.unit.test_render_golden import GOLDEN

NAMESPACE = "llm"
NCCL_PORT = 41327  # any port: NCCL chooses its own at run time


@dataclasses.dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict[str, str]


def _expression_holds(expression: dict[str, Any], labels: dict[str, str]) -> bool:
    """One LabelSelectorRequirement, as apimachinery's labels.Selector reads it."""
    key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    assert operator == "DoesNotExist", operator
    return key not in labels


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A meta/v1 LabelSelector: every matchLabels pair and every matchExpressions requirement."""
    assert set(selector) <= {"matchLabels", "matchExpressions"}, selector
    pairs = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    return pairs and all(_expression_holds(e, labels) for e in selector.get("matchExpressions", []))


def _namespace_labels(namespace: str) -> dict[str, str]:
    # What the API server sets on every namespace.
    return {"kubernetes.io/metadata.name": namespace}


def _peer_admits(peer: dict[str, Any], policy_namespace: str, source: Pod) -> bool:
    if "ipBlock" in peer:
        # Sources here are pods, known by labels; ipBlock is meant for addresses outside the cluster
        # (whether a CNI applies it to pod IPs is implementation-defined), so it admits none of them.
        return False
    if "namespaceSelector" in peer:
        namespace_ok = matches(peer["namespaceSelector"], _namespace_labels(source.namespace))
    else:
        namespace_ok = source.namespace == policy_namespace
    return namespace_ok and matches(peer.get("podSelector", {}), source.labels)


def admits(policies: list[dict[str, Any]], source: Pod, destination: Pod, port: int) -> bool:
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == destination.namespace
        and matches(p["spec"]["podSelector"], destination.labels)
        and "Ingress" in p["spec"]["policyTypes"]
    ]
    if not selecting:
        return True  # a pod no policy selects is open
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            # An empty or missing list matches everything (NetworkPolicyIngressRule's field docs).
            ports = rule.get("ports")
            port_ok = not ports or any(p["port"] == port for p in ports)
            peers = rule.get("from")
            source_ok = not peers or any(
                _peer_admits(peer, policy["metadata"]["namespace"], source) for peer in peers
            )
            if port_ok and source_ok:
                return True
    return False


def golden_deployment(name: str = "fp8-h100", *, called: str | None = None, **spec_changes: Any) -> Any:
    body = yaml.safe_load((GOLDEN / f"{name}.input.yaml").read_text())
    body["metadata"]["namespace"] = NAMESPACE
    if called:
        body["metadata"].update(name=called, uid=f"uid-{called}")
    body["spec"].update(spec_changes)
    return parse_mimo_deployment(body)


def rendered(md: Any, config: RenderConfig | None = None) -> list[dict[str, Any]]:
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan), plan
    return render_children(md, plan, config or RenderConfig())


def policies_of(children: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in children if c["kind"] == "NetworkPolicy"]


def _pods(children: list[dict[str, Any]]) -> list[Pod]:
    return [
        Pod(pod["metadata"]["namespace"], pod["metadata"]["labels"])
        for sts in children
        if sts["kind"] == "StatefulSet"
        for pod in statefulset_pods(sts)
    ]


def test_every_pod_of_a_multi_node_replica_reaches_the_others_on_any_port() -> None:
    children = rendered(golden_deployment("bf16-h100-multinode", replicas=2))
    policies, pods = policies_of(children), _pods(children)
    assert len(pods) >= 4
    for policy in policies:
        kubernetes_validate.validate(policy, "1.35.0", strict=True)
    for source in pods:
        for destination in pods:
            for port in (constants.MASTER_PORT, NCCL_PORT, constants.HTTP_PORT):
                assert admits(policies, source, destination, port)


def test_outsiders_reach_only_the_api_port_and_only_from_the_allowed_places() -> None:
    children = rendered(golden_deployment())
    policies, pods = policies_of(children), _pods(children)
    client = Pod(NAMESPACE, {"app": "chat-frontend"})
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    elsewhere = Pod("team-b", {"app": "chat-frontend"})
    for pod in pods:
        assert admits(policies, client, pod, constants.HTTP_PORT)
        assert admits(policies, prometheus, pod, constants.HTTP_PORT)
        assert not admits(policies, elsewhere, pod, constants.HTTP_PORT)
        for outsider in (client, prometheus, elsewhere):
            assert not admits(policies, outsider, pod, constants.MASTER_PORT)
            assert not admits(policies, outsider, pod, NCCL_PORT)


def test_a_route_lets_its_gateways_namespace_in_on_the_api_port_only() -> None:
    md = golden_deployment(route={"gateway": {"name": "public", "namespace": "gateways"}})
    children = rendered(md)
    policies, pods = policies_of(children), _pods(children)
    proxy = Pod("gateways", {"app": "envoy"})
    for pod in pods:
        assert admits(policies, proxy, pod, constants.HTTP_PORT)
        assert not admits(policies, proxy, pod, constants.MASTER_PORT)
    without_route = policies_of(rendered(golden_deployment()))
    assert not admits(without_route, proxy, pods[0], constants.HTTP_PORT)


def test_configured_peers_replace_the_default_and_none_leaves_only_the_pods_themselves() -> None:
    team = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}}}
    md = golden_deployment()
    only_team = RenderConfig(network_policy_api_from=(team,))
    children = rendered(md, only_team)
    policies, pods = policies_of(children), _pods(children)
    assert admits(policies, Pod("team-b", {}), pods[0], constants.HTTP_PORT)
    assert not admits(policies, Pod(NAMESPACE, {"app": "chat-frontend"}), pods[0], constants.HTTP_PORT)

    nobody = policies_of(rendered(md, RenderConfig(network_policy_api_from=())))
    assert not admits(nobody, Pod(NAMESPACE, {"app": "chat-frontend"}), pods[0], constants.HTTP_PORT)
    assert admits(nobody, pods[1 % len(pods)], pods[0], constants.HTTP_PORT)


def test_turned_off_no_policy_is_rendered() -> None:
    assert policies_of(rendered(golden_deployment(), RenderConfig(network_policy_api_from=None))) == []


def test_the_policy_selects_this_deployments_pods_and_no_others() -> None:
    ours = rendered(golden_deployment(model={"cache": {"volumeClaimTemplate": {"size": "400Gi"}}}))
    theirs = _pods(rendered(golden_deployment(called="other")))
    (policy,) = policies_of(ours)
    assert all(matches(policy["spec"]["podSelector"], pod.labels) for pod in _pods(ours))
    assert not any(matches(policy["spec"]["podSelector"], pod.labels) for pod in theirs)
    # The weights download pod (it listens on nothing) is covered too: nothing outside reaches it.
    (job,) = [c for c in ours if c["kind"] == "Job"]
    fetcher = Pod(NAMESPACE, job["spec"]["template"]["metadata"]["labels"])
    for port in (NCCL_PORT, constants.MASTER_PORT):
        assert not admits([policy], Pod(NAMESPACE, {"app": "chat-frontend"}), fetcher, port)
        assert not admits([policy], theirs[0], fetcher, port)
    # Other deployments' pods are outsiders too: not even their vLLM pods reach ours off the API port.
    assert not admits([policy], theirs[0], _pods(ours)[0], constants.MASTER_PORT)


def test_the_spec_names_more_api_clients_and_they_reach_only_the_api_port() -> None:
    chat = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "team-b"}},
        "podSelector": {"matchLabels": {"app": "chat-frontend"}},
    }
    balancer = {"ipBlock": {"cidr": "192.0.2.0/24", "except": ["192.0.2.128/25"]}}
    md = golden_deployment(serving={"apiClients": [chat, balancer]})
    children = rendered(md)
    policies, pods = policies_of(children), _pods(children)
    for policy in policies:
        kubernetes_validate.validate(policy, "1.35.0", strict=True)
    (api_rule,) = [rule for rule in policies[0]["spec"]["ingress"] if "ports" in rule]
    assert balancer in api_rule["from"]  # ipBlock: passed through as the API server stores it
    for pod in pods:
        assert admits(policies, Pod("team-b", {"app": "chat-frontend"}), pod, constants.HTTP_PORT)
        assert not admits(policies, Pod("team-b", {"app": "batch"}), pod, constants.HTTP_PORT)
        assert not admits(policies, Pod("team-b", {"app": "chat-frontend"}), pod, constants.MASTER_PORT)
    # The installer's default peers stay: the spec adds clients, it cannot take the defaults away.
    assert admits(policies, Pod("monitoring", {}), pods[0], constants.HTTP_PORT)


@pytest.mark.parametrize(
    ("client", "words"),
    [
        ({}, "needs namespaceSelector, podSelector or ipBlock"),
        ({"podSelector": {}, "ipBlock": {"cidr": "10.0.0.0/8"}}, "not both"),
        ({"ipBlock": {"cidr": "10.0.0.0"}}, "cidr"),
        ({"podSelector": {"matchLabels": {"app": "x"}, "typo": 1}}, "typo"),
    ],
)
def test_an_api_client_that_is_not_a_network_policy_peer_is_refused(
    client: dict[str, Any], words: str
) -> None:
    with pytest.raises(SpecInvalid, match=words):
        golden_deployment(serving={"apiClients": [client]})


def test_the_operator_reaches_a_download_pods_progress_port_and_nothing_else() -> None:
    # fp8-h100 fetches its weights with a Job onto the claim it names.
    operator = Pod(
        "mimo-system", {"app.kubernetes.io/name": "mimo-operator", "app.kubernetes.io/instance": "op"}
    )
    peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mimo-system"}},
        "podSelector": {"matchLabels": dict(operator.labels)},
    }
    children = rendered(golden_deployment(), RenderConfig(network_policy_api_from=(), operator_peer=peer))
    job = next(c for c in children if c["kind"] == "Job")
    fetcher = Pod(NAMESPACE, job["spec"]["template"]["metadata"]["labels"])
    port = job["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    policies = policies_of(children)
    assert admits(policies, operator, fetcher, port)
    assert not admits(policies, operator, fetcher, constants.HTTP_PORT)
    assert not admits(policies, Pod("mimo-system", {"app.kubernetes.io/name": "other"}), fetcher, port)
    assert not admits(policies, operator, _pods(children)[0], constants.HTTP_PORT)
