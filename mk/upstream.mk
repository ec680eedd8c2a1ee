# Upstream CRDs (KEDA, Prometheus Operator, Gateway API) the sandbox tests install, and promtool for the
# chart's alert rules: both from the Go module proxy at the versions in sandbox/versions.py, cached under
# $(MIMO_CACHE_DIR) or ~/.cache/mimo-operator; a second run fetches and builds nothing.
# Cold: the three module downloads take ~10 s; promtool's `go install` took 49 min on 2 shared, busy cores
# (load ~12) — far less on an idle machine; cached by version afterwards.
.PHONY: upstream-crds promtool rules-test

PROMTOOL = $(shell $(PY) -c 'from mimo_sandbox.upstream import ensure_promtool; print(ensure_promtool())')

upstream-crds: $(STAMP)
	$(PY) -m mimo_sandbox.upstream crds

promtool: $(STAMP)
	$(PY) -m mimo_sandbox.upstream promtool

# The chart's alert rules: syntax and expressions (check), then their behaviour on synthetic series (test).
rules-test: promtool
	$(PROMTOOL) check rules $(CHART)/files/prometheus-rules.yaml
	$(PROMTOOL) test rules tests/rules/prometheus-rules.test.yaml

lint: rules-test
# tests/unit/test_monitoring.py runs promtool too; the sandbox tests install the CRDs. Built here, before
# pytest, so the download and compile show progress instead of sitting behind pytest's capture.
unit: promtool
test: upstream-crds promtool
