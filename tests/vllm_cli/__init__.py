"""Checks generated `vllm serve` command lines against the real vLLM parser (see harness.py)."""
