"""What every script run inside the vLLM venv does first (argcheck.py, kv_allocator.py,
attention_check.py): keep the real stdout for its JSON answer and quiet vLLM's start-up.

vLLM logs to stdout by default (envs.VLLM_LOGGING_STREAM = "ext://sys.stdout") and native libraries
may print to fd 1 too; so a private copy of the real stdout carries the JSON and fd 1 points at stderr
before anything from vLLM is imported. These scripts run as `python <script>`, so this module is found
beside them on sys.path.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO


def json_channel() -> TextIO:
    """The real stdout, for the one JSON answer; everything else printed goes to stderr."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # No accelerator here: tell vLLM's platform detection so instead of letting it probe NVML.
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    # Never phone home from a test.
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    return out
