# vLLM 0.33.0's own `vllm serve` parser, for tests/unit/test_vllm_parser_facts.py and any test that
# checks rendered command lines (tests/vllm_cli/harness.py). It lives in a venv outside git,
# under $(MIMO_CACHE_DIR) or ~/.cache/mimo-operator: ~4 GB from PyPI on first use (about two
# minutes), a no-op afterwards. Prepared here rather than inside pytest so the download shows
# progress instead of sitting behind pytest's output capture.
.PHONY: vllm-venv

vllm-venv: $(STAMP)
	$(PY) -m tests.vllm_cli.harness

test: vllm-venv
unit: vllm-venv
