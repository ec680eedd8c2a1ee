"""The child cache (watch events, re-lists, stale events) and the "would applying change anything"
comparison, including fields our field manager applied before and no longer renders."""

from __future__ import annotations

import copy
from typing import Any

from mimo_operator.kube.cache import ChildCache
from mimo_operator.kube.compare import covers, owns_more, up_to_date

MANAGER = "mimo-operator"


def svc(name: str, deployment: str | None = "m", rv: str = "10", namespace: str = "ns") -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "mimo-operator"}
    if deployment:
        labels["serving.mimo.dev/deployment"] = deployment
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "resourceVersion": rv},
    }


def held(cache: ChildCache, namespace: str = "ns", deployment: str = "m") -> list[str]:
    return sorted(key[2] for key in cache._groups.get((namespace, deployment), {}))


def test_a_relist_drops_what_vanished_during_the_gap_and_returns_it() -> None:
    cache = ChildCache()
    cache.replace("v1", "Service", "ns", [svc("m"), svc("m-pods")])
    vanished = cache.replace("v1", "Service", "ns", [svc("m", rv="11")])
    assert [obj["metadata"]["name"] for obj in vanished] == ["m-pods"]
    assert held(cache) == ["m"]


def test_a_relist_of_one_namespace_leaves_other_namespaces_and_kinds_alone() -> None:
    cache = ChildCache()
    cache.replace("v1", "Service", "ns", [svc("m")])
    cache.replace("v1", "Service", "other", [svc("m", namespace="other")])
    sts = {**svc("m"), "apiVersion": "apps/v1", "kind": "StatefulSet"}
    cache.observe("ADDED", sts)
    assert cache.replace("v1", "Service", "ns", []) != []
    assert held(cache, "other") == ["m"]
    assert list(cache._groups[("ns", "m")]) == [("apps/v1", "StatefulSet", "m")]


def test_a_child_whose_deployment_label_was_edited_away_leaves_the_cache() -> None:
    cache = ChildCache()
    cache.observe("ADDED", svc("m-pods"))
    # The selector no longer matches: the API server reports DELETED, with the object as it now is.
    cache.observe("DELETED", svc("m-pods", deployment=None, rv="12"))
    assert held(cache) == []


def test_an_event_older_than_the_operators_own_write_is_ignored() -> None:
    cache = ChildCache()
    cache.record("ns", "m", [svc("m", rv="20")], [])
    cache.observe("MODIFIED", svc("m", rv="15"))
    assert cache.get("ns", ("v1", "Service", "m"))["metadata"]["resourceVersion"] == "20"  # type: ignore[index]
    cache.observe("MODIFIED", svc("m", rv="21"))
    assert cache.get("ns", ("v1", "Service", "m"))["metadata"]["resourceVersion"] == "21"  # type: ignore[index]


def test_covers_ignores_server_defaults_and_compares_quantities_by_amount() -> None:
    desired = {"spec": {"cpu": "500m", "ports": [{"port": 80}], "flag": False}}
    live = {"spec": {"cpu": "0.5", "ports": [{"port": 80, "protocol": "TCP"}], "extra": 1}}
    assert covers(live, desired)
    assert not covers(live, {"spec": {"cpu": "1"}})
    assert not covers(live, {"spec": {"ports": [{"port": 80}, {"port": 81}]}})


LIVE_SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {
        "name": "m",
        "annotations": {"old.example/annotation": "x"},
        "labels": {"app": "m"},
        "managedFields": [
            {
                "manager": "kubectl",
                "operation": "Update",
                "fieldsV1": {"f:metadata": {"f:annotations": {"f:someone.else/thing": {}}}},
            },
            {
                "manager": MANAGER,
                "operation": "Apply",
                "fieldsV1": {
                    "f:metadata": {
                        "f:annotations": {"f:old.example/annotation": {}},
                        "f:labels": {"f:app": {}},
                    },
                    "f:spec": {
                        "f:ports": {
                            'k:{"port":8000,"protocol":"TCP"}': {".": {}, "f:name": {}, "f:port": {}},
                            'k:{"port":29501,"protocol":"TCP"}': {".": {}, "f:port": {}},
                        },
                        "f:selector": {},
                    },
                },
            },
        ],
    },
    "spec": {
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}, {"port": 29501, "protocol": "TCP"}],
        "selector": {"app": "m"},
    },
}
DESIRED_SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "m", "labels": {"app": "m"}},
    "spec": {"ports": [{"name": "http", "port": 8000}, {"port": 29501}], "selector": {"app": "m"}},
}


def test_an_annotation_we_applied_before_and_render_no_more_needs_an_apply() -> None:
    assert covers(LIVE_SERVICE, DESIRED_SERVICE)  # the old comparison alone saw nothing to do
    assert not up_to_date(LIVE_SERVICE, DESIRED_SERVICE, MANAGER)
    with_annotation = copy.deepcopy(DESIRED_SERVICE)
    with_annotation["metadata"]["annotations"] = {"old.example/annotation": "x"}
    assert up_to_date(LIVE_SERVICE, with_annotation, MANAGER)


def test_a_list_item_we_applied_before_and_render_no_more_needs_an_apply() -> None:
    fields = LIVE_SERVICE["metadata"]["managedFields"][1]["fieldsV1"]
    desired = copy.deepcopy(DESIRED_SERVICE)
    desired["metadata"]["annotations"] = {"old.example/annotation": "x"}
    assert not owns_more(fields, desired)
    desired["spec"]["ports"] = desired["spec"]["ports"][:1]
    assert owns_more(fields, desired)


def test_fields_of_other_managers_never_count() -> None:
    live = copy.deepcopy(LIVE_SERVICE)
    live["metadata"]["managedFields"] = live["metadata"]["managedFields"][:1]
    assert up_to_date(live, DESIRED_SERVICE, MANAGER)
