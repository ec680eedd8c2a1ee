"""Invariants of the planner over random requests (hypothesis).

Properties that need a plan `assume` one (hypothesis then draws another sample instead of counting
a vacuous pass), and every test reports the feasible/infeasible mix with `event` so `pytest
--hypothesis-show-statistics` shows what was exercised. Beside the budget check, the properties
compare plans with each other (more memory, shorter context, fp8 KV, min concurrency) or with
quantities computed here from the model profile, so they do not restate the planner's inequality.
"""

import math

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from mimo_operator.models.gpus import GIB, GPU_CATALOG, custom_gpu
from mimo_operator.models.mimo_v2_flash import MIMO_V2_FLASH as M
from mimo_operator.planner import ParallelismOverrides, Plan, PlanError, PlanRequest, plan

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
REASONS = {
    "AttentionUnsupported",
    "ContextDoesNotFit",
    "ContextTooLong",
    "ContextTooShort",
    "InvalidConcurrency",
    "InvalidUtilization",
    "LayoutNotPlaceable",
    "NeedsMoreThanOneNode",
    "NoLayoutMatchesOverrides",
    "TensorParallelExceedsNode",
    "TensorParallelInvalid",
    "WeightsDoNotFit",
}

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
    gpu_memory_utilization=st.floats(min_value=0.5, max_value=0.98, exclude_min=True),
    max_model_len=st.one_of(st.just("auto"), st.integers(4096, 262144)),
    min_concurrency=st.integers(1, 64),
    overrides=st.one_of(st.just(ParallelismOverrides()), overrides),
    strategy=st.sampled_from(["latency", "throughput"]),
    mtp=st.sampled_from([False, True, None]),
    hybrid_kv_cache=st.booleans(),
)


def _planned(request: PlanRequest) -> Plan:
    """The plan for `request`; infeasible samples are recorded and discarded."""
    result = plan(request, M)
    event(f"feasible: {isinstance(result, Plan)}")
    if isinstance(result, PlanError):
        event(f"refused: {result.reason}")
    assume(isinstance(result, Plan))
    assert isinstance(result, Plan)
    return result


@SETTINGS
@given(requests)
def test_layout_invariants(request: PlanRequest) -> None:
    result = _planned(request)
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
    result = _planned(request)
    budget = request.gpu.memory_mib / 1024 * request.gpu_memory_utilization
    assert result.weights_gib_per_gpu + result.reserved_gib_per_gpu < budget
    assert result.kv_cache_gib_per_gpu > 0
    per_rank = math.ceil(request.min_concurrency / result.data_parallel)
    needed = result.kv_bytes_per_token_per_gpu * result.max_model_len * per_rank
    assert needed <= result.kv_cache_gib_per_gpu * GIB + 0.01 * GIB
    if request.max_model_len != "auto":
        assert result.max_model_len == request.max_model_len
    assert 4096 <= result.max_model_len <= M.max_context
    # What was asked for is what vLLM's allocator will hold (planner/vllm_kv.py mirrors it).
    assert result.max_concurrent_at_max_len >= request.min_concurrency


@SETTINGS
@given(requests)
def test_weights_on_the_gpus_add_up_to_the_checkpoint(request: PlanRequest) -> None:
    """Without expert parallel each model instance (TP x PP GPUs) holds the whole checkpoint once, so
    the most loaded GPU times TP x PP is at least the checkpoint (minus the MTP blocks vLLM does
    not load): a planner that dropped a parameter group would fall short."""
    result = _planned(request)
    assume(not result.expert_parallel)
    mtp_blocks = sum(
        g.total_params * g.storage_for(request.precision).bytes_per_param
        for g in M.param_groups
        if g.placement == "mtp"
    )
    loaded = (M.checkpoint_bytes(request.precision) - mtp_blocks) / GIB
    held = result.weights_gib_per_gpu * result.tensor_parallel * result.pipeline_parallel
    assert held >= loaded * 0.999


@SETTINGS
@given(requests)
def test_vllm_start_up_estimate_never_exceeds_what_the_pool_holds(request: PlanRequest) -> None:
    """vLLM's logged concurrency charges each request the sliding-window worst case, so it can only
    be below the steady-state count; and a max-length prompt never meets more room than that."""
    result = _planned(request)
    per_rank = result.vllm_log_max_concurrency
    steady = result.max_concurrent_at_max_len / result.data_parallel
    assert per_rank <= steady + 1
    assert result.max_concurrent_prompts_at_max_len <= result.max_concurrent_at_max_len
    assert result.vllm_log_kv_cache_tokens == int(per_rank * result.max_model_len) * result.data_parallel or (
        abs(result.vllm_log_kv_cache_tokens - per_rank * result.max_model_len * result.data_parallel)
        <= result.max_model_len * result.data_parallel / 100 + result.data_parallel
    )


@SETTINGS
@given(requests)
def test_every_infeasible_result_explains_itself(request: PlanRequest) -> None:
    result = plan(request, M)
    event(f"feasible: {isinstance(result, Plan)}")
    assume(isinstance(result, PlanError))
    assert isinstance(result, PlanError)
    assert result.reason in REASONS, result.reason
    assert any(ch.isdigit() for ch in result.message), result.message


@SETTINGS
@given(requests, st.floats(min_value=1.0, max_value=4.0))
def test_more_memory_per_gpu_never_needs_more_gpus(request: PlanRequest, factor: float) -> None:
    assume(request.strategy == "latency")
    small = PlanRequest(**{**vars(request), "gpu": custom_gpu(request.gpu.memory_gib)})
    large = PlanRequest(**{**vars(request), "gpu": custom_gpu(request.gpu.memory_gib * factor)})
    small_plan = _planned(small)
    large_plan = plan(large, M)
    assert isinstance(large_plan, Plan), large_plan
    assert large_plan.gpus_per_replica <= small_plan.gpus_per_replica


@SETTINGS
@given(requests, st.integers(4096, 262144))
def test_feasible_stays_feasible_with_shorter_context(request: PlanRequest, shorter: int) -> None:
    assume(request.max_model_len != "auto")
    _planned(request)
    assert request.max_model_len != "auto"
    smaller = PlanRequest(**{**vars(request), "max_model_len": min(shorter, request.max_model_len)})
    assert isinstance(plan(smaller, M), Plan)


@SETTINGS
@given(requests)
def test_fp8_kv_cache_never_holds_fewer_tokens(request: PlanRequest) -> None:
    """Same layout, half the bytes per token: the fp8 pool holds at least as many tokens."""
    bf16 = _planned(PlanRequest(**{**vars(request), "kv_cache_dtype": "auto"}))
    same_layout = ParallelismOverrides(
        tensor=bf16.tensor_parallel,
        pipeline=bf16.pipeline_parallel,
        data=bf16.data_parallel,
        expert=bf16.expert_parallel,
    )
    fp8 = plan(
        PlanRequest(
            **{
                **vars(request),
                "kv_cache_dtype": "fp8",
                "overrides": same_layout,
                "max_model_len": bf16.max_model_len,
            }
        ),
        M,
    )
    assume(not (isinstance(fp8, PlanError) and fp8.reason == "AttentionUnsupported"))  # fp8 KV on SM 8.0
    assert isinstance(fp8, Plan), fp8
    assert fp8.kv_cache_tokens >= 2 * bf16.kv_cache_tokens - bf16.data_parallel


@SETTINGS
@given(requests, st.integers(2, 8))
def test_more_concurrency_never_lengthens_the_auto_context(request: PlanRequest, more: int) -> None:
    base = PlanRequest(**{**vars(request), "max_model_len": "auto"})
    first = _planned(base)
    same_layout = ParallelismOverrides(
        tensor=first.tensor_parallel,
        pipeline=first.pipeline_parallel,
        data=first.data_parallel,
        expert=first.expert_parallel,
    )
    busier = plan(
        PlanRequest(
            **{
                **vars(base),
                "min_concurrency": min(4096, base.min_concurrency * more),
                "overrides": same_layout,
            }
        ),
        M,
    )
    if isinstance(busier, Plan):
        assert busier.max_model_len <= first.max_model_len
    else:
        event(f"busier refused: {busier.reason}")
