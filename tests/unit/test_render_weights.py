"""The weights cache as rendered: claim, download Job, and a vLLM container that reads it offline."""

import hashlib
from typing import Any

import kubernetes_validate
import pytest
import yaml

from mimo_operator.api import SpecInvalid, parse_mimo_deployment
from mimo_operator.fetcher.cli import parse_args
from mimo_operator.fetcher.outcome import FailureKind
from mimo_operator.handlers.settings import OperatorSettings
from mimo_operator.planner import Plan
from mimo_operator.render import RenderConfig, plan_for, render_children
from tests.unit.test_render_golden import GOLDEN
from tests.unit.test_render_network_policy import matches

TEMPLATE = {"volumeClaimTemplate": {"size": "400Gi", "storageClassName": "fast-rwx"}}


def _md(cache: dict[str, Any] | None, **model: Any) -> Any:
    body = yaml.safe_load((GOLDEN / "fp8-h200.input.yaml").read_text())
    body["spec"].setdefault("model", {}).update(model)
    if cache is not None:
        body["spec"]["model"]["cache"] = cache
    return parse_mimo_deployment(body)


def _children(md: Any, config: RenderConfig | None = None) -> list[dict[str, Any]]:
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    return render_children(md, plan, config or RenderConfig())


def _one(children: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [c for c in children if c["kind"] == kind]
    assert len(found) == 1, [c["kind"] for c in children]
    return found[0]


def _vllm(children: list[dict[str, Any]]) -> dict[str, Any]:
    container: dict[str, Any] = _one(children, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]
    return container


def test_operator_created_claim_is_filled_by_a_job_and_served_offline() -> None:
    md = _md(TEMPLATE, revision="0123456789abcdef0123456789abcdef01234567")
    children = _children(md)
    for child in children:
        kubernetes_validate.validate(child, "1.35.0", strict=True)

    claim = _one(children, "PersistentVolumeClaim")
    assert claim["metadata"]["name"] == f"{md.metadata.name}-weights"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "400Gi"}},
        "storageClassName": "fast-rwx",
    }
    assert claim["metadata"]["ownerReferences"][0]["uid"] == md.metadata.uid

    job = _one(children, "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is False  # the fetcher holds no cluster credentials
    # The Job's arguments are accepted by the fetcher's own parser, and it writes where vLLM reads.
    args = parse_args(pod["containers"][0]["args"])
    assert args.repo == "XiaomiMiMo/MiMo-V2-Flash"
    assert args.revision == "0123456789abcdef0123456789abcdef01234567"
    vllm = _vllm(children)
    assert vllm["args"][0] == str(args.dest)
    assert str(args.dest).startswith(vllm["volumeMounts"][1]["mountPath"] + "/")
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in vllm["env"]
    assert "--revision" not in vllm["args"]
    sts_volumes = _one(children, "StatefulSet")["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "model-cache",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    } in sts_volumes


def test_the_job_runs_the_fetcher_image_the_operator_was_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # The chart passes the operator's own image (tag or digest) as MIMO_OPERATOR_FETCHER_IMAGE.
    image = "registry.local/mimo-operator@sha256:" + "b" * 64
    monkeypatch.setenv("MIMO_OPERATOR_FETCHER_IMAGE", image)
    config = OperatorSettings(namespaces=["ns"]).render_config()
    job = _one(_children(_md(TEMPLATE), config), "Job")
    assert [c["image"] for c in job["spec"]["template"]["spec"]["containers"]] == [image]


def test_job_fails_at_once_only_for_failures_a_retry_cannot_fix() -> None:
    job = _one(_children(_md(TEMPLATE)), "Job")
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert set(rule["onExitCodes"]["values"]) == {
        FailureKind.UNAUTHORIZED.exit_code,
        FailureKind.NOT_FOUND.exit_code,
        FailureKind.DISK_TOO_SMALL.exit_code,
        FailureKind.CHECKSUM_MISMATCH.exit_code,
    }
    assert job["spec"]["backoffLimit"] >= 1  # stalls and network errors get another pod


def test_fetcher_pod_is_not_counted_as_a_vllm_pod() -> None:
    job = _one(_children(_md(TEMPLATE)), "Job")
    assert "serving.mimo.dev/deployment" not in job["spec"]["template"]["metadata"]["labels"]


def test_a_new_revision_is_a_new_job_in_a_new_directory() -> None:
    first = _one(_children(_md(TEMPLATE, revision="aaaa")), "Job")
    second = _one(_children(_md(TEMPLATE, revision="bbbb")), "Job")
    assert first["metadata"]["name"] != second["metadata"]["name"]
    dest = [parse_args(j["spec"]["template"]["spec"]["containers"][0]["args"]).dest for j in (first, second)]
    assert dest[0] != dest[1]


def test_the_token_reaches_the_fetcher_from_the_secret() -> None:
    md = _md(TEMPLATE, tokenSecretRef={"name": "hf", "key": "token"})
    env = _one(_children(md), "Job")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}]


def test_user_named_claim_is_filled_but_never_created() -> None:
    children = _children(_md({"persistentVolumeClaim": {"claimName": "team-weights"}}))
    assert not [c for c in children if c["kind"] == "PersistentVolumeClaim"]
    job = _one(children, "Job")
    assert (
        job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "team-weights"
    )


@pytest.mark.parametrize(
    "cache",
    [
        {"persistentVolumeClaim": {"claimName": "preloaded", "readOnly": True}},
        {"persistentVolumeClaim": {"claimName": "preloaded"}, "fetch": "none"},
        {"hostPath": {"path": "/mnt/nvme/models"}},
        None,
    ],
)
def test_no_job_where_the_operator_does_not_fetch(cache: dict[str, Any] | None) -> None:
    preloaded = cache and cache.get("persistentVolumeClaim")
    # A copy already on the claim: its path, and the checkpoint it is a copy of (for the planner).
    model = {"name": "/models/mimo-v2-flash-fp8", "copyOf": "XiaomiMiMo/MiMo-V2-Flash"} if preloaded else {}
    md = _md(cache, **model)
    children = _children(md)
    assert not [c for c in children if c["kind"] == "Job"]
    vllm = _vllm(children)
    assert vllm["args"][0] == md.spec.model.name
    assert all(e["name"] != "HF_HUB_OFFLINE" for e in vllm["env"])


@pytest.mark.parametrize(
    ("cache", "error"),
    [
        ({"hostPath": {"path": "/x"}, "volumeClaimTemplate": {"size": "1Ti"}}, "set one of"),
        ({"persistentVolumeClaim": {"claimName": "w", "readOnly": True}, "fetch": "job"}, "readOnly"),
        ({"volumeClaimTemplate": {"size": "lots"}}, "size"),
    ],
)
def test_cache_specs_that_cannot_work_are_refused(cache: dict[str, Any], error: str) -> None:
    with pytest.raises(SpecInvalid, match=error):
        _md(cache)


def _named(name: str, cache: dict[str, Any], **model: Any) -> Any:
    body = yaml.safe_load((GOLDEN / "fp8-h200.input.yaml").read_text())
    body["metadata"]["name"] = name
    body["metadata"]["uid"] = f"00000000-0000-0000-0000-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    body["spec"].setdefault("model", {}).update(model, cache=cache)
    return parse_mimo_deployment(body)


PINNED = "0123456789abcdef0123456789abcdef01234567"
SHARED = {"persistentVolumeClaim": {"claimName": "team-weights"}}


def test_deployments_of_the_same_weights_on_one_claim_render_one_download_job() -> None:
    a, b = _named("chat-a", SHARED, revision=PINNED), _named("chat-b", SHARED, revision=PINNED)
    job_a, job_b = _one(_children(a), "Job"), _one(_children(b), "Job")
    # Same name and the same immutable content: whichever deployment comes second finds the first's
    # Job (handlers/weights.py) and never starts a second fetcher into the same directory.
    assert job_a["metadata"]["name"] == job_b["metadata"]["name"]
    assert job_a["metadata"]["name"].startswith("team-weights-fetch-")
    assert job_a["spec"] == job_b["spec"]
    # Each deployment's own children stay its own.
    assert job_a["metadata"]["ownerReferences"][0]["uid"] == a.metadata.uid
    # Other weights on the claim, or the same weights on another claim, are another Job.
    other_revision = _one(_children(_named("chat-c", SHARED, revision="f" * 40)), "Job")
    other_claim = _one(_children(_named("chat-a", {"persistentVolumeClaim": {"claimName": "x"}})), "Job")
    names = {job_a["metadata"]["name"], other_revision["metadata"]["name"], other_claim["metadata"]["name"]}
    assert len(names) == 3
    # A claim the operator creates per deployment is never shared.
    own = [_one(_children(_named(n, TEMPLATE, revision=PINNED)), "Job") for n in ("chat-a", "chat-b")]
    assert own[0]["metadata"]["name"] != own[1]["metadata"]["name"]


def test_a_long_claim_name_still_gives_a_job_name_the_pod_label_can_hold() -> None:
    long_claim = {"persistentVolumeClaim": {"claimName": "w" * 200}}
    job = _one(_children(_named("chat", long_claim)), "Job")
    assert len(job["metadata"]["name"]) <= 63
    assert len(job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"]) <= 63
    kubernetes_validate.validate(job, "1.35.0", strict=True)


def test_a_shared_download_pod_is_under_the_network_policy_of_every_deployment_sharing_it() -> None:
    a, b = _named("chat-a", SHARED, revision=PINNED), _named("chat-b", SHARED, revision=PINNED)
    pod_labels = _one(_children(a), "Job")["spec"]["template"]["metadata"]["labels"]
    for md in (a, b):
        children = _children(md)
        policy = _one(children, "NetworkPolicy")
        kubernetes_validate.validate(policy, "1.35.0", strict=True)
        assert matches(policy["spec"]["podSelector"], pod_labels)
        vllm_labels = _one(children, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
        assert matches(policy["spec"]["podSelector"], vllm_labels)
    # The other deployment's vLLM pods are not selected by this one's policy.
    policy_a = _one(_children(a), "NetworkPolicy")
    vllm_b = _one(_children(b), "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert not matches(policy_a["spec"]["podSelector"], vllm_b)


def test_a_retained_claim_has_no_owner_and_a_deleted_one_has_its_deployment() -> None:
    retained = _named("chat", {"volumeClaimTemplate": {"size": "400Gi", "whenDeleted": "Retain"}})
    claim = _one(_children(retained), "PersistentVolumeClaim")
    kubernetes_validate.validate(claim, "1.35.0", strict=True)
    assert "ownerReferences" not in claim["metadata"]  # the garbage collector leaves it
    assert claim["metadata"]["labels"]["serving.mimo.dev/deployment"] == "chat"  # adopted again by name
    deleted = _one(_children(_named("chat", TEMPLATE)), "PersistentVolumeClaim")
    assert deleted["metadata"]["ownerReferences"][0]["uid"] == retained.metadata.uid
