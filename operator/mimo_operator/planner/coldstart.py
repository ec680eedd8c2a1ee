"""How long a replica's first start takes, known before anyone applies it (issue 14 item 6).

    first start = checkpoint bytes / download rate + weights per pod / load rate + engine start

The three terms are separate because they are paid at different times: the download once per cache
(a download Job fills a claim every pod reads), or once per pod start when vLLM downloads into an
emptyDir; the load and the engine start on every pod start. So a person can tell before applying
whether the first start takes ten minutes or an hour, and what a restart costs afterwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from mimo_operator.models.limits import (
    DEFAULT_DOWNLOAD_RATE_MIB_PER_S,
    DEFAULT_ENGINE_START_SECONDS,
    DEFAULT_LOAD_RATE_MIB_PER_S,
)
from mimo_operator.planner.types import Plan

FetchedBy = Literal["job", "vllm", "none"]


@dataclass(frozen=True)
class ColdStart:
    fetched_by: FetchedBy
    """Who downloads: a Job once per cache, vLLM in each pod, or nobody (weights already in place)."""
    download_every_start: bool
    """vLLM downloads again on every pod start (an emptyDir cache)."""
    download_gib: float
    """Checkpoint size fetched before the first pod can load (each pod fetches it with vLLM)."""
    download_rate_mib_per_s: int
    download_seconds: int
    load_seconds: int
    engine_start_seconds: int

    @property
    def first_start_seconds(self) -> int:
        """From apply to the first replica serving, when nothing is cached yet."""
        return self.download_seconds + self.load_seconds + self.engine_start_seconds

    @property
    def new_pod_seconds(self) -> int:
        """A restart, reschedule or scale-up after the first start."""
        again = self.download_seconds if self.download_every_start else 0
        return again + self.load_seconds + self.engine_start_seconds

    @property
    def summary(self) -> str:
        if self.fetched_by == "none":
            download = "weights in place, no download"
        else:
            who = "a download Job, once" if self.fetched_by == "job" else "vLLM in each pod"
            download = (
                f"download {self.download_gib:.1f} GiB at {self.download_rate_mib_per_s} MiB/s by {who}: "
                f"{_minutes(self.download_seconds)}"
            )
        again = ", downloading again" if self.download_every_start else ""
        return (
            f"first start ~{_minutes(self.first_start_seconds)} ({download}; load "
            f"{_minutes(self.load_seconds)}; engine start {_minutes(self.engine_start_seconds)}); "
            f"a new pod ~{_minutes(self.new_pod_seconds)}{again}"
        )


def _minutes(seconds: int) -> str:
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds / 60:.1f} min"


def load_seconds(plan: Plan, load_rate_mib_per_s: int) -> float:
    """Seconds one pod takes to read its share of the weights from the cache into GPU memory."""
    return plan.weights_gib_per_pod * 1024 / load_rate_mib_per_s


def cold_start(
    plan: Plan,
    fetched_by: FetchedBy,
    *,
    download_every_start: bool = False,
    download_rate_mib_per_s: int = DEFAULT_DOWNLOAD_RATE_MIB_PER_S,
    load_rate_mib_per_s: int = DEFAULT_LOAD_RATE_MIB_PER_S,
    engine_start_seconds: int = DEFAULT_ENGINE_START_SECONDS,
) -> ColdStart:
    """The estimate for one replica of `plan`. vLLM fetches the whole checkpoint in every pod, in
    parallel (each worker calls snapshot_download for every *.safetensors file: vLLM 0.33.0,
    model_executor/model_loader/default_loader.py, _prepare_weights); a Job fetches it once."""
    download_gib = 0.0 if fetched_by == "none" else plan.checkpoint_gib
    return ColdStart(
        fetched_by=fetched_by,
        download_every_start=download_every_start and fetched_by == "vllm",
        download_gib=download_gib,
        download_rate_mib_per_s=download_rate_mib_per_s,
        download_seconds=math.ceil(download_gib * 1024 / download_rate_mib_per_s),
        load_seconds=math.ceil(load_seconds(plan, load_rate_mib_per_s)),
        engine_start_seconds=engine_start_seconds,
    )
