"""Lower and upper bounds on what a person may ask for, shared by the CRD schema and the planner.

Each bound exists because a value beyond it cannot serve anything useful, and the reason is stated
next to it so the CRD's `kubectl explain` text, the planner's refusal and the README say the same.
"""

from __future__ import annotations

# The shortest context worth deploying 300B parameters for: MiMo-V2-Flash's chat template, a system
# prompt, a question and a short answer already take a few thousand tokens, and a reasoning trace
# (thinking on) runs to thousands more. 4096 is also below every default anyone publishes for this
# model (vLLM recipe: "--max-model-len=65536 is usually good for most scenarios").
MIN_MODEL_LEN = 4096
# vLLM 0.33 schedules at most max_num_seqs requests per engine (data parallel rank); its default
# for `vllm serve` on large GPUs is 1024 (vllm/engine/arg_utils.py). Asking for more max-length
# requests at once than 4 full DP ranks could ever run is a typo, not a plan.
MAX_NUM_SEQS = 1024
MAX_MIN_CONCURRENCY = 4096
# The pods take whole GPUs (device plugins do not share them), so at one half or below, half of every
# GPU or more would sit idle: such a value is a mistake, not a plan (the bound is exclusive). Above
# 0.98 nothing is left for allocations vLLM does not count (NCCL buffers, allocator fragmentation);
# vLLM's own default is 0.92 (vllm/config/cache.py) and the public vLLM recipe for this model uses 0.9.
MIN_GPU_MEMORY_UTILIZATION = 0.5
MAX_GPU_MEMORY_UTILIZATION = 0.98

# What the cold-start estimate (planner/coldstart.py) and the startup probe's budget assume unless
# told otherwise. The download rate is an assumption, not a measurement: 100 MiB/s (~0.84 Gbit/s) is
# a modest share of a 10 GbE node link to the Hub or a mirror; egress proxies are often slower, a
# nearby mirror faster, and status.weights.bytesPerSecond shows what a download here really got.
DEFAULT_DOWNLOAD_RATE_MIB_PER_S = 100
# Reading safetensors from the cache volume into GPU memory, per pod (network storage); raise it for
# local NVMe.
DEFAULT_LOAD_RATE_MIB_PER_S = 400
# Process start, NCCL setup, torch.compile and CUDA graph capture: several minutes for a 48-layer MoE
# on a first start (the operator setting engine_init_seconds).
DEFAULT_ENGINE_START_SECONDS = 420
