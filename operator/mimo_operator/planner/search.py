"""The planner: choose the layout of one model replica and the context length that fits.

Pure: a PlanRequest and a ModelProfile in, a Plan or a PlanError out. Every candidate layout is
evaluated with the same memory model (`memory.py`); the chosen one is explained in `summary`, and
the others in `rejected`, each with the numbers that decided it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mimo_operator.models import limits
from mimo_operator.models.gpus import GIB, MIB
from mimo_operator.models.profile import ModelProfile
from mimo_operator.planner import memory, vllm_kv
from mimo_operator.planner.attention import AttentionPlan, attention_plan
from mimo_operator.planner.explain import derivation
from mimo_operator.planner.types import Layout, Plan, PlanError, PlanRequest, Rejected
from mimo_operator.planner.validation import RECIPE_MAX_MODEL_LEN, Validation, validation_for

TENSOR_SIZES = (1, 2, 4, 8)
MAX_NODES_PER_REPLICA = 8
# Data parallel ranks with expert parallel may span this many nodes (wide EP): each node one
# `--data-parallel-size-local` share, the experts split over every GPU of every node.
MAX_DATA_PARALLEL_NODES = 4
# `maxModelLen: auto` picks the fewest GPUs that still serve at least this much context: a
# reasoning model's traces alone run to tens of thousands of tokens.
AUTO_MIN_CONTEXT = 32768
# ... and never more than the public vLLM recipe's stated maximum ("max is 128k"): longer contexts
# are the model's (262,144) but no public vLLM run vouches for them, so they must be asked for.
AUTO_MAX_CONTEXT = RECIPE_MAX_MODEL_LEN
# auto lengths are rounded down to a multiple of this, to read well and to stay block-aligned.
AUTO_LEN_GRANULE = 1024
# The throughput estimate assumes requests that hold this many tokens of context while decoding.
DECODE_CONTEXT = 4096
MAX_REJECTED_SHOWN = 10


@dataclass(frozen=True)
class _Stage:
    weights: memory.WeightSplit
    reserve: float
    free: float  # bytes left for the KV pool on one GPU of this stage
    kv: memory.KvLayout


@dataclass(frozen=True)
class _Evaluation:
    layout: Layout
    mtp: bool
    stages: tuple[_Stage, ...]
    fit_len: int  # the longest context that fits min-concurrency on every stage (0 = none)
    problem: str | None  # why this layout cannot serve the request, with numbers


def _gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


def _tokens(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}K"
    return str(value)


def _dtype_bytes(request: PlanRequest) -> int:
    # The KV cache follows the model dtype (bf16, 2 bytes) unless fp8 is asked for.
    return 1 if request.kv_cache_dtype == "fp8" else 2


def _candidates(request: PlanRequest, profile: ModelProfile) -> list[Layout]:
    """Every layout worth evaluating, in order of preference for the latency strategy."""
    per_node = request.gpus_per_node
    heads = profile.full_attention.query_heads
    layouts: list[Layout] = []
    for tensor in TENSOR_SIZES:
        if tensor > per_node or heads % tensor:
            continue
        for data in (1, 2, 4, 8):
            if tensor * data > per_node:
                continue
            layouts.append(Layout(tensor, 1, data, data > 1))
    # Beyond one node: pipeline stages of whole nodes, each node one tensor-parallel group.
    node_tp = max((t for t in TENSOR_SIZES if t <= per_node and heads % t == 0), default=1)
    for pipeline in range(2, MAX_NODES_PER_REPLICA * (per_node // node_tp) + 1):
        layouts.append(Layout(node_tp, pipeline, 1, False))
    # ... or data parallel ranks filling whole nodes, the experts spread over all of them (wide EP).
    for tensor in TENSOR_SIZES:
        if tensor > per_node or heads % tensor or per_node % tensor:
            continue
        for nodes in range(2, MAX_DATA_PARALLEL_NODES + 1):
            layouts.append(Layout(tensor, 1, nodes * per_node // tensor, True))
    return sorted(layouts, key=lambda lay: (lay.gpus, lay.pipeline, lay.data, -lay.tensor))


def _apply_overrides(request: PlanRequest, layouts: list[Layout]) -> list[Layout]:
    over = request.overrides
    out: list[Layout] = []
    for lay in layouts:
        if over.tensor is not None and lay.tensor != over.tensor:
            continue
        if over.pipeline is not None and lay.pipeline != over.pipeline:
            continue
        if over.data is not None and lay.data != over.data:
            continue
        expert = lay.expert if over.expert is None else over.expert
        candidate = Layout(lay.tensor, lay.pipeline, lay.data, expert)
        if candidate not in out:
            out.append(candidate)
    # An explicit tensor x pipeline the default search does not produce (e.g. TP2 x PP2 on one node).
    if over.tensor is not None and over.pipeline is not None and not out:
        out.append(Layout(over.tensor, over.pipeline, over.data or 1, bool(over.expert)))
    return out


def _layout_problem(request: PlanRequest, layout: Layout) -> str | None:
    """Shapes the renderer cannot place: replicas span whole nodes; across nodes either pipeline stages
    (one tensor parallel group per node) or data parallel ranks that share their experts, never both."""
    per_node = request.gpus_per_node
    if layout.gpus <= per_node:
        return None
    if layout.gpus % per_node:
        return f"{layout.describe()} needs {layout.gpus} GPUs, which do not fill whole {per_node}-GPU nodes"
    if layout.data == 1:
        return None
    if layout.pipeline > 1:
        return (
            f"{layout.describe()} spreads pipeline stages and data parallel ranks over nodes; only one of "
            f"the two may cross nodes"
        )
    if not layout.expert:
        return (
            f"{layout.describe()} puts data parallel ranks on other nodes without expert parallel: that is "
            f"{layout.data // (per_node // layout.tensor)} copies of the model failing as one; ask for more "
            f"replicas instead"
        )
    if per_node % layout.tensor:
        return (
            f"{layout.describe()} splits a tensor parallel group of {layout.tensor} over {per_node}-GPU nodes"
        )
    return None


def _evaluate(request: PlanRequest, profile: ModelProfile, layout: Layout) -> _Evaluation:
    mtp = request.mtp if request.mtp is not None else layout.pipeline == 1
    budget = request.gpu.memory_mib * MIB * request.gpu_memory_utilization
    per_rank = math.ceil(request.min_concurrency / layout.data)
    stages: list[_Stage] = []
    fit_len = profile.max_context
    problem: str | None = None
    if per_rank > limits.MAX_NUM_SEQS:
        problem = (
            f"{layout.describe()} would need {per_rank} requests at once per data parallel rank; vLLM "
            f"schedules at most {limits.MAX_NUM_SEQS} (its default max-num-seqs)"
        )
    for stage in range(layout.pipeline):
        weights = memory.weight_bytes_per_gpu(profile, request.precision, layout, stage, mtp)
        reserve = memory.reserve_bytes(profile, layout)
        kv = memory.kv_cost(profile, layout, stage, _dtype_bytes(request), request.hybrid_kv_cache, mtp)
        free = budget - weights.total - reserve
        stages.append(_Stage(weights, reserve, free, kv))
        if free <= 0 and problem is None:
            problem = (
                f"{request.precision} weights need {_gib(weights.total)} per GPU at {layout.describe()}, "
                f"plus {_gib(reserve)} reserved = {_gib(weights.total + reserve)}; each {request.gpu.key} "
                f"offers {_gib(budget)} at utilization {request.gpu_memory_utilization:.2f}"
            )
            fit_len = 0
            continue
        usable = free - per_rank * kv.bytes_per_request
        stage_len = int(usable // (per_rank * kv.bytes_per_token)) if kv.bytes_per_token else fit_len
        fit_len = max(0, min(fit_len, stage_len))
    if problem is None:
        fit_len = _fit_in_vllm_blocks(request, profile, layout, mtp, stages, per_rank, fit_len)
        problem = _context_problem(request, layout, fit_len, stages, per_rank)
    return _Evaluation(layout, mtp, tuple(stages), fit_len, problem)


def _fit_in_vllm_blocks(
    request: PlanRequest,
    profile: ModelProfile,
    layout: Layout,
    mtp: bool,
    stages: list[_Stage],
    per_rank: int,
    fit_len: int,
) -> int:
    """The byte arithmetic above ignores how vLLM cuts the pool into blocks (padded sliding-window
    groups, whole blocks per request); shorten the context until vLLM's own block accounting also
    holds `per_rank` requests of it (a few percent at most)."""
    length = min(fit_len, AUTO_MAX_CONTEXT) if request.max_model_len == "auto" else request.max_model_len
    if length > fit_len:
        return fit_len  # already too short for an explicit length: _context_problem says so
    first = True
    while length > 0:
        figures = vllm_kv.vllm_kv_figures(
            profile,
            layout.tensor,
            layout.pipeline,
            [s.free for s in stages],
            _dtype_bytes(request),
            length,
            request.hybrid_kv_cache,
            mtp,
        )
        if figures.fits_at_steady_state >= per_rank:
            return fit_len if first else length
        if request.max_model_len != "auto":
            return length - 1  # the requested length does not fit in vLLM's blocks
        first = False
        length = int(length * 0.98) // AUTO_LEN_GRANULE * AUTO_LEN_GRANULE
    return 0


def _context_problem(
    request: PlanRequest, layout: Layout, fit_len: int, stages: list[_Stage], per_rank: int
) -> str | None:
    free = min(s.free for s in stages)
    wanted = AUTO_MIN_CONTEXT if request.max_model_len == "auto" else request.max_model_len
    if fit_len >= wanted:
        return None
    what = "the auto minimum of " if request.max_model_len == "auto" else ""
    return (
        f"{_gib(free)} of KV cache per GPU at {layout.describe()} holds {per_rank} request(s) of "
        f"{_tokens(fit_len)} tokens at most, short of {what}{wanted} tokens x {per_rank}"
    )


def _chosen_len(request: PlanRequest, ev: _Evaluation) -> int:
    if request.max_model_len != "auto":
        return request.max_model_len
    fit = min(ev.fit_len, AUTO_MAX_CONTEXT)
    if fit >= AUTO_LEN_GRANULE:
        return fit - fit % AUTO_LEN_GRANULE
    return fit


def _decode_tokens_per_s_per_gpu(
    request: PlanRequest, profile: ModelProfile, ev: _Evaluation, length: int
) -> float | None:
    """Bandwidth-roofline estimate of steady decode throughput: every step reads the weights the
    batch touches and the batch's KV; the batch is what the KV pool and max_num_seqs allow."""
    bandwidth = request.gpu.bandwidth_gbps * 1e9
    if bandwidth <= 0:
        return None
    context = min(length, DECODE_CONTEXT)
    batch = min(
        memory.MAX_NUM_SEQS,
        *(int(s.free // (s.kv.bytes_per_token * context + s.kv.bytes_per_request)) for s in ev.stages),
    )
    if batch <= 0:
        return 0.0
    moe = profile.moe
    tokens_seen = batch * (ev.layout.data if ev.layout.expert else 1)
    hit = 1 - (1 - moe.experts_per_token / moe.routed_experts) ** tokens_seen
    step = max(
        (
            s.weights.other
            + s.weights.experts * hit
            + batch * (s.kv.bytes_per_token * context + s.kv.bytes_per_request)
        )
        / bandwidth
        for s in ev.stages
    )
    return ev.layout.data * batch / step / ev.layout.gpus


def _to_plan(request: PlanRequest, profile: ModelProfile, ev: _Evaluation, rejected: list[Rejected]) -> Plan:
    lay = ev.layout
    length = _chosen_len(request, ev)
    per_node = request.gpus_per_node
    gpus_per_pod = min(lay.gpus, per_node)
    nodes = math.ceil(lay.gpus / per_node)
    # The stage that runs out of KV first bounds the whole pipeline; report its pool and cost together.
    worst = min(ev.stages, key=lambda s: s.free / s.kv.bytes_per_token if s.kv.bytes_per_token else math.inf)
    heaviest = max(ev.stages, key=lambda s: s.weights.total)
    tokens_per_rank = min(int(s.free // s.kv.bytes_per_token) for s in ev.stages)
    fits_per_rank = min(
        int(s.free // (s.kv.bytes_per_token * length + s.kv.bytes_per_request)) for s in ev.stages
    )
    kv_tokens = tokens_per_rank * lay.data
    vllm_figures = vllm_kv.vllm_kv_figures(
        profile,
        lay.tensor,
        lay.pipeline,
        [s.free for s in ev.stages],
        _dtype_bytes(request),
        length,
        request.hybrid_kv_cache,
        ev.mtp,
    )
    concurrent = min(fits_per_rank, vllm_figures.fits_at_steady_state) * lay.data
    prompts = min(concurrent, vllm_figures.fits_as_prompts * lay.data)
    budget = request.gpu.memory_mib * MIB * request.gpu_memory_utilization
    est = _decode_tokens_per_s_per_gpu(request, profile, ev, length)
    attention = attention_plan(request.gpu, request.kv_cache_dtype)
    validation = _validation(request, profile, ev)
    notes = _notes(request, profile, attention, length)
    notes.append(
        f'vLLM will log "GPU KV cache size: {vllm_figures.log_kv_cache_tokens * lay.data:,} tokens" and '
        f'"Maximum concurrency for {length:,} tokens per request: {vllm_figures.log_max_concurrency:.2f}x"'
        f"{' per data parallel rank' if lay.data > 1 else ''}: its start-up estimate charges each request "
        f"the sliding-window layers' worst case; once prefilled, {concurrent} max-length requests fit, and "
        f"{prompts} when each arrives as a max-length prompt"
    )
    summary = (
        f"{request.precision} on {lay.gpus}x {request.gpu.key}: {lay.describe()}"
        f"{' +MTP' if ev.mtp else ''}, max-len {length}, "
        f"weights {heaviest.weights.total / GIB:.1f} GiB + KV {worst.free / GIB:.1f} GiB per GPU, "
        f"{_tokens(kv_tokens)} KV tokens, {concurrent} x max-len at once, {validation.short}"
    )
    return Plan(
        precision=request.precision,
        gpu=request.gpu.key,
        gpus_per_replica=lay.gpus,
        gpus_per_pod=gpus_per_pod,
        nodes_per_replica=nodes,
        tensor_parallel=lay.tensor,
        pipeline_parallel=lay.pipeline,
        data_parallel=lay.data,
        expert_parallel=lay.expert,
        mtp=ev.mtp,
        kv_cache_dtype=request.kv_cache_dtype,
        hybrid_kv_cache=request.hybrid_kv_cache,
        gpu_memory_utilization=request.gpu_memory_utilization,
        max_model_len=length,
        budget_gib_per_gpu=round(budget / GIB, 2),
        weights_gib_per_gpu=round(heaviest.weights.total / GIB, 2),
        reserved_gib_per_gpu=round(worst.reserve / GIB, 2),
        kv_cache_gib_per_gpu=round(worst.free / GIB, 2),
        kv_bytes_per_token_per_gpu=worst.kv.bytes_per_token,
        kv_cache_tokens=kv_tokens,
        max_concurrent_at_max_len=concurrent,
        checkpoint_gib=round(profile.checkpoint_bytes(request.precision) / GIB, 1),
        weights_gib_per_pod=round(heaviest.weights.total * gpus_per_pod / GIB, 1),
        est_decode_tokens_per_s_per_gpu=None if est is None else round(est, 1),
        summary=summary,
        rejected=tuple(rejected[:MAX_REJECTED_SHOWN]),
        notes=tuple(notes),
        gpu_vendor=request.gpu.vendor,
        attention_backend=attention.backend,
        attention_backend_flag=attention.flag,
        validated=validation.validated,
        validation=validation.text,
        vllm_log_kv_cache_tokens=vllm_figures.log_kv_cache_tokens * lay.data,
        vllm_log_max_concurrency=round(vllm_figures.log_max_concurrency, 2),
        max_concurrent_prompts_at_max_len=prompts,
        kv_pool_bytes_per_stage=tuple(int(s.free) for s in ev.stages),
        explain=derivation(request, profile, lay, ev.mtp, length, ev.stages, vllm_figures),
    )


def _notes(request: PlanRequest, profile: ModelProfile, attention: AttentionPlan, length: int) -> list[str]:
    notes: list[str] = []
    if request.precision != profile.official_precision:
        notes.append(
            f"no official {request.precision} checkpoint exists: "
            f"point spec.model at a {request.precision} copy"
        )
    if not request.gpu.native_fp8 and request.precision == "fp8":
        notes.append(
            f"{request.gpu.key} has no fp8 tensor cores: vLLM runs fp8 weights through Marlin kernels"
        )
    if not request.hybrid_kv_cache:
        notes.append("hybrid KV cache manager off: every layer stores the full context")
    if length > AUTO_MAX_CONTEXT:
        notes.append(
            f"max-model-len {length} is above {AUTO_MAX_CONTEXT}, the maximum the public vLLM recipe "
            f"states for this model"
        )
    notes.extend(attention.notes)
    return notes


def _request_problem(request: PlanRequest, profile: ModelProfile) -> PlanError | None:
    """Inputs that cannot serve anything, refused before any layout is tried (bounds: models/limits.py)."""
    over = request.overrides
    low, high = limits.MIN_GPU_MEMORY_UTILIZATION, limits.MAX_GPU_MEMORY_UTILIZATION
    if not low < request.gpu_memory_utilization <= high:
        return PlanError(
            "InvalidUtilization",
            f"gpu memory utilization {request.gpu_memory_utilization} is outside ({low}, {high}]: at "
            f"{low} or below, half of every (whole, unshared) GPU or more sits idle; above {high} nothing "
            f"is left for memory vLLM does not count (NCCL buffers, fragmentation)",
        )
    if not 1 <= request.min_concurrency <= limits.MAX_MIN_CONCURRENCY:
        return PlanError(
            "InvalidConcurrency",
            f"min concurrency {request.min_concurrency} is outside 1..{limits.MAX_MIN_CONCURRENCY} "
            f"(vLLM runs at most {limits.MAX_NUM_SEQS} requests at once per data parallel rank)",
        )
    if request.max_model_len != "auto" and request.max_model_len < limits.MIN_MODEL_LEN:
        return PlanError(
            "ContextTooShort",
            f"max model len {request.max_model_len} is below {limits.MIN_MODEL_LEN} tokens: the chat "
            f"template, a prompt and an answer (let alone a reasoning trace) do not fit, so the "
            f"deployment would refuse every real request",
        )
    if request.max_model_len != "auto" and request.max_model_len > profile.max_context:
        return PlanError(
            "ContextTooLong",
            f"max model len {request.max_model_len} is beyond {profile.max_context}, "
            f"the model's max_position_embeddings",
        )
    heads = profile.full_attention.query_heads
    if over.tensor is not None and (over.tensor not in TENSOR_SIZES or heads % over.tensor):
        return PlanError(
            "TensorParallelInvalid",
            f"tensor parallel {over.tensor} must divide the {heads} query heads and be one of {TENSOR_SIZES}",
        )
    if over.tensor is not None and over.tensor > request.gpus_per_node:
        return PlanError(
            "TensorParallelExceedsNode",
            f"tensor parallel {over.tensor} needs {over.tensor} GPUs in one node; "
            f"nodes have {request.gpus_per_node} {request.gpu.key}",
        )
    attention = attention_plan(request.gpu, request.kv_cache_dtype)
    if attention.problem is not None:
        return PlanError("AttentionUnsupported", attention.problem)
    return None


def plan(request: PlanRequest, profile: ModelProfile) -> Plan | PlanError:
    """Choose a layout for one replica (see the module docstring)."""
    problem = _request_problem(request, profile)
    if problem is not None:
        return problem
    layouts = _apply_overrides(request, _candidates(request, profile))
    unplaceable = [why for lay in layouts if (why := _layout_problem(request, lay))]
    layouts = [lay for lay in layouts if _layout_problem(request, lay) is None]
    if unplaceable and not layouts:
        return PlanError("LayoutNotPlaceable", unplaceable[0])
    if not layouts:
        return PlanError(
            "NoLayoutMatchesOverrides",
            f"no layout on {request.gpus_per_node}-GPU nodes matches the parallelism overrides "
            f"({request.overrides.describe()})",
        )
    if request.strategy == "latency" and request.overrides.data is None:
        # Data parallel adds GPUs for throughput, never latency: only the throughput strategy tries it.
        layouts = [lay for lay in layouts if lay.data == 1] or layouts
    evaluations = [_evaluate(request, profile, lay) for lay in layouts]
    feasible = [ev for ev in evaluations if ev.problem is None]
    if not feasible:
        return _infeasible(request, evaluations)
    if request.strategy == "throughput":
        return _choose_throughput(request, profile, evaluations, feasible)
    # Layouts are ordered fewest GPUs first; a layout someone ran in public wins over a smaller one
    # nobody has (validated layouts first), and the smaller ones are listed with that reason.
    validated = [ev for ev in feasible if _validation(request, profile, ev).validated]
    chosen = validated[0] if validated else feasible[0]
    rejected = [
        Rejected(ev.layout.describe(), ev.problem)
        for ev in evaluations
        if ev.problem is not None and ev.layout.gpus <= chosen.layout.gpus
    ]
    rejected += [
        Rejected(
            ev.layout.describe(),
            f"fits on {ev.layout.gpus} GPUs but no public run validates it; "
            f"{chosen.layout.describe()} is {_validation(request, profile, chosen).text}",
        )
        for ev in feasible
        if ev.layout.gpus < chosen.layout.gpus
    ]
    return _to_plan(request, profile, chosen, rejected)


def _validation(request: PlanRequest, profile: ModelProfile, ev: _Evaluation) -> Validation:
    lay = ev.layout
    return validation_for(
        request.gpu,
        lay.tensor,
        lay.pipeline,
        lay.data,
        lay.expert,
        precision=request.precision,
        kv_cache_dtype=request.kv_cache_dtype,
        max_model_len=_chosen_len(request, ev),
        mtp=ev.mtp,
        hybrid_kv_cache=request.hybrid_kv_cache,
        model=profile.hf_repo,
    )


def _choose_throughput(
    request: PlanRequest, profile: ModelProfile, evaluations: list[_Evaluation], feasible: list[_Evaluation]
) -> Plan:
    """The most decode tokens/s per GPU among the layouts on the fewest nodes that fit: across nodes,
    pipeline stages compete with data parallel ranks sharing their experts on the same GPUs. A wider
    group than needed is never chosen unasked (spec.parallelism.data asks): it multiplies the GPUs a
    replica holds and the unit that fails and restarts as one."""
    fewest_nodes = min(math.ceil(ev.layout.gpus / request.gpus_per_node) for ev in feasible)
    pool = [ev for ev in feasible if math.ceil(ev.layout.gpus / request.gpus_per_node) == fewest_nodes]

    def score(ev: _Evaluation) -> tuple[float, int]:
        est = _decode_tokens_per_s_per_gpu(request, profile, ev, _chosen_len(request, ev))
        return (est or 0.0, -ev.layout.gpus)

    best = max(pool, key=score)
    # The layouts that fit on as many GPUs come first: they are the choice a person would weigh.
    rejected = [
        Rejected(
            ev.layout.describe(),
            f"estimated {score(ev)[0]:.0f} decode tokens/s per GPU, below {score(best)[0]:.0f} for "
            f"{best.layout.describe()}",
        )
        for ev in sorted(pool, key=score, reverse=True)
        if ev is not best
    ]
    rejected += [
        Rejected(ev.layout.describe(), ev.problem)
        for ev in evaluations
        if ev.problem is not None and math.ceil(ev.layout.gpus / request.gpus_per_node) <= fewest_nodes
    ]
    return _to_plan(request, profile, best, rejected)


def _infeasible(request: PlanRequest, evaluations: list[_Evaluation]) -> PlanError:
    rejected = tuple(Rejected(ev.layout.describe(), ev.problem or "") for ev in evaluations)
    over = request.overrides
    largest = max(evaluations, key=lambda ev: (ev.layout.gpus, ev.fit_len))
    fits_weights = [ev for ev in evaluations if ev.fit_len > 0]
    if over.pipeline == 1 and all(ev.layout.pipeline == 1 for ev in evaluations):
        reason = "NeedsMoreThanOneNode"
        head = (
            f"one {request.gpus_per_node}x {request.gpu.key} node cannot hold {request.precision} "
            f"weights and pipeline parallel is fixed at 1"
        )
    elif fits_weights:
        reason = "ContextDoesNotFit"
        head = f"no layout fits the requested context on {request.gpu.key}"
    else:
        reason = "WeightsDoNotFit"
        head = (
            f"{request.precision} weights do not fit any layout of up to "
            f"{largest.layout.gpus}x {request.gpu.key}"
        )
    closest = largest.problem or ""
    message = f"{head}: {closest}"
    return PlanError(reason, message, rejected[:MAX_REJECTED_SHOWN])
