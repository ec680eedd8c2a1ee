"""Status from observed StatefulSets: the phase a person sees and the conditions automation reads."""

from typing import Any

import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.planner import Plan, PlanError
from mimo_operator.render import RenderConfig, plan_for, plan_hash
from mimo_operator.render.status import compute_status, failed_status
from tests.unit.test_render_golden import GOLDEN

T0, T1 = "2026-11-29T10:00:00Z", "2026-11-29T10:05:00Z"


def _md(name: str, **changes: Any) -> Any:
    body = yaml.safe_load((GOLDEN / f"{name}.input.yaml").read_text())
    body["spec"].update(changes.pop("spec", {}))
    body.update(changes)
    return parse_mimo_deployment(body)


def _sts(digest: str, replicas: int, ready: int, rolling: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2, "labels": {"serving.mimo.dev/plan-hash": digest}},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 2,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas - (1 if rolling else 0),
            "currentRevision": "a",
            "updateRevision": "b" if rolling else "a",
        },
    }


def _status(md: Any, sts: list[dict[str, Any]], expected: int, now: str = T0) -> Any:
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    return compute_status(md, plan, plan_hash(md, plan, RenderConfig()), sts, expected, now)


def _cond(status: Any, type_: str) -> Any:
    return next(c for c in status.conditions if c.type == type_)


def test_no_children_yet_is_deploying() -> None:
    md = _md("fp8-h100")
    status = _status(md, [], 1)
    assert status.phase == "Deploying"
    assert (status.ready, status.replicas) == ("0/2", 2)
    assert _cond(status, "Planned").status == "True"
    assert _cond(status, "Progressing").status == "True"


def test_all_ready_is_ready_with_endpoint_and_leader_selector() -> None:
    md = _md("fp8-h100")
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    digest = plan_hash(md, plan, RenderConfig())
    status = _status(md, [_sts(digest, 2, 2)], 1)
    assert status.phase == "Ready" and status.ready_replicas == 2
    assert status.endpoint == "http://mimo.llm.svc:8000/v1"
    assert status.selector == "serving.mimo.dev/deployment=mimo,serving.mimo.dev/role=leader"
    assert status.plan is not None and status.plan.hash == digest
    assert _cond(status, "ModelPinned").status == "True"


def test_lost_pod_after_being_ready_is_degraded_but_first_start_is_deploying() -> None:
    md = _md("fp8-h100")
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    digest = plan_hash(md, plan, RenderConfig())
    first_start = _status(md, [_sts(digest, 2, 1)], 1)
    assert first_start.phase == "Deploying"
    served = _status(md, [_sts(digest, 2, 2)], 1)
    after = _md("fp8-h100", status=served.model_dump(by_alias=True))
    status = _status(after, [_sts(digest, 2, 1)], 1)
    assert status.phase == "Degraded"
    assert _cond(status, "Degraded").message == "1 of 2 replicas not ready"


def test_stale_plan_hash_means_rolling_out() -> None:
    md = _md("fp8-h100")
    status = _status(md, [_sts("old-hash", 2, 2)], 1)
    assert status.phase == "Deploying"


def test_multi_node_replica_counts_only_whole_groups() -> None:
    md = _md("bf16-h100-multinode")
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    digest = plan_hash(md, plan, RenderConfig())
    # group 0 fully ready, group 1 has one of its two pods ready
    status = _status(md, [_sts(digest, 2, 2), _sts(digest, 2, 1)], 2)
    assert status.ready_replicas == 1 and status.phase == "Deploying"
    assert status.selector == "apps.kubernetes.io/pod-index=0,serving.mimo.dev/deployment=mimo-bf16"


def test_unchanged_world_gives_identical_status() -> None:
    md = _md("fp8-h100")
    first = _status(md, [], 1, now=T0)
    again = _status(_md("fp8-h100", status=first.model_dump(by_alias=True)), [], 1, now=T1)
    assert again == first  # lastTransitionTime kept: a resync writes nothing


def test_unpinned_model_warns() -> None:
    md = _md("fp8-h200")
    status = _status(md, [], 1)
    pinned = _cond(status, "ModelPinned")
    assert pinned.status == "False" and pinned.reason == "Unpinned"
    assert "spec.model.revision" in pinned.message


def test_failed_status_keeps_other_fields_and_names_the_reason() -> None:
    md = _md("fp8-h100", spec={"gpu": {"type": "L40S-48GB"}, "parallelism": {"pipeline": 1}})
    error = plan_for(md.spec)
    assert isinstance(error, PlanError)
    status = failed_status(md.status, 4, error.reason, error.message, T0)
    assert status.phase == "Failed" and status.observed_generation == 4
    planned = _cond(status, "Planned")
    assert (planned.status, planned.reason) == ("False", "NeedsMoreThanOneNode")
    assert any(ch.isdigit() for ch in planned.message)


def test_stuck_pods_explain_why_the_deployment_is_not_ready() -> None:
    from mimo_operator.render.diagnosis import pod_problems

    pods = [
        {
            "metadata": {"name": "mimo-1"},
            "status": {
                "containerStatuses": [
                    {
                        "state": {
                            "waiting": {
                                "reason": "CreateContainerConfigError",
                                "message": 'secret "hf-token" not found',
                            }
                        }
                    }
                ]
            },
        },
        {
            "metadata": {"name": "mimo-0"},
            "status": {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": '0/5 nodes are available: persistentvolumeclaim "mimo-weights" not found.',
                    }
                ]
            },
        },
        {
            "metadata": {"name": "mimo-2"},
            "status": {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]},
        },  # still starting: not a problem yet
    ]
    problems = pod_problems(pods)
    assert [reason for reason, _ in problems] == ["Unschedulable", "CreateContainerConfigError"]
    md = _md("fp8-h100")
    plan = plan_for(md.spec)
    assert isinstance(plan, Plan)
    status = compute_status(md, plan, plan_hash(md, plan, RenderConfig()), [], 1, T0, problems=problems)
    ready = _cond(status, "Ready")
    assert ready.reason == "Unschedulable"
    assert 'persistentvolumeclaim "mimo-weights" not found' in ready.message
    assert 'secret "hf-token" not found' in ready.message
