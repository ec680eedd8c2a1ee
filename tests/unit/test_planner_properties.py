"""Invariants of the planner over random requests (hypothesis)."""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimo_operator.models.gpus import GIB, GPU_CATALOG, custom_gpu
from mimo_operator.models.mimo_v2_flash import MIMO_V2_FLASH as M
from mimo_operator.planner import ParallelismOverrides, Plan, PlanError, PlanRequest, plan

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

gpus = st.one_of(
    st.sampled_from(list(GPU_CATALOG.values())),
    st.floats(min_value=16, max_value=300).map(lambda gib: custom_gpu(round(gib, 1))),
)
overrides = st.builds(
    ParallelismOverrides,
    tensor=st.one_of(st.none(), st.sampled_from([1, 2, 3, 4, 8, 16])),
    pipeline=st.one_of(st.none(), st.integers(1, 4)),
    data=st.one_of(st.none(), st.sampled_from([1, 2, 4])),
    expert=st.one_of(st.none(), st.booleans()),
)
requests = st.builds(
    PlanRequest,
    precision=st.sampled_from(["bf16", "fp8", "int4"]),
    gpu=gpus,
    gpus_per_node=st.sampled_from([1, 2, 4, 8]),
    kv_cache_dtype=st.sampled_from(["auto", "fp8"]),
    gpu_memory_utilization=st.floats(min_value=0.5, max_value=0.98),
    max_model_len=st.one_of(st.just("auto"), st.integers(1024, 262144)),
    min_concurrency=st.integers(1, 64),
    overrides=st.one_of(st.just(ParallelismOverrides()), overrides),
    strategy=st.sampled_from(["latency", "throughput"]),
    hybrid_kv_cache=st.booleans(),
)


@SETTINGS
@given(requests)
def test_layout_invariants(request: PlanRequest) -> None:
    result = plan(request, M)
    if isinstance(result, PlanError):
        return
    assert result.gpus_per_replica == result.tensor_parallel * result.pipeline_parallel * result.data_parallel
    assert M.full_attention.query_heads % result.tensor_parallel == 0
    assert result.tensor_parallel <= request.gpus_per_node
    assert result.nodes_per_replica == math.ceil(result.gpus_per_replica / request.gpus_per_node)
    assert result.gpus_per_pod * result.nodes_per_replica == result.gpus_per_replica
    for name, fixed in vars(request.overrides).items():
        if fixed is not None:
            actual = {
                "tensor": result.tensor_parallel,
                "pipeline": result.pipeline_parallel,
                "data": result.data_parallel,
                "expert": result.expert_parallel,
            }[name]
            assert actual == fixed, f"override {name}={fixed} not honoured: {actual}"


@SETTINGS
@given(requests)
def test_memory_never_exceeds_the_budget(request: PlanRequest) -> None:
    result = plan(request, M)
    if isinstance(result, PlanError):
        return
    budget = request.gpu.memory_mib / 1024 * request.gpu_memory_utilization
    assert result.weights_gib_per_gpu + result.reserved_gib_per_gpu < budget
    assert result.kv_cache_gib_per_gpu > 0
    per_rank = math.ceil(request.min_concurrency / result.data_parallel)
    needed = result.kv_bytes_per_token_per_gpu * result.max_model_len * per_rank
    assert needed <= result.kv_cache_gib_per_gpu * GIB + 0.01 * GIB
    assert result.max_concurrent_at_max_len >= request.min_concurrency
    if request.max_model_len != "auto":
        assert result.max_model_len == request.max_model_len
    assert result.max_model_len <= M.max_context


@SETTINGS
@given(requests)
def test_every_infeasible_result_explains_itself(request: PlanRequest) -> None:
    result = plan(request, M)
    if isinstance(result, Plan):
        assert result.summary
        return
    assert result.reason and result.reason[0].isupper() and " " not in result.reason
    assert any(ch.isdigit() for ch in result.message), result.message


@SETTINGS
@given(requests, st.floats(min_value=1.0, max_value=4.0))
def test_more_memory_per_gpu_never_needs_more_gpus(request: PlanRequest, factor: float) -> None:
    small = PlanRequest(**{**vars(request), "gpu": custom_gpu(request.gpu.memory_gib)})
    large = PlanRequest(**{**vars(request), "gpu": custom_gpu(request.gpu.memory_gib * factor)})
    small_plan, large_plan = plan(small, M), plan(large, M)
    if isinstance(small_plan, Plan) and request.strategy == "latency":
        assert isinstance(large_plan, Plan)
        assert large_plan.gpus_per_replica <= small_plan.gpus_per_replica


@SETTINGS
@given(requests, st.integers(1, 262144))
def test_feasible_stays_feasible_with_shorter_context(request: PlanRequest, shorter: int) -> None:
    if request.max_model_len == "auto":
        return
    result = plan(request, M)
    if isinstance(result, PlanError):
        return
    smaller = PlanRequest(**{**vars(request), "max_model_len": min(shorter, request.max_model_len)})
    assert isinstance(plan(smaller, M), Plan)
