# The CRD in crds/ is generated from the pydantic models in operator/mimo_operator/api and committed;
# tests/unit/test_crd.py fails when it is stale. Regenerate after changing the models.
CRD_FILE := crds/mimodeployments.serving.mimo.dev.yaml

crd: $(STAMP)
	$(PY) -m mimo_operator.api.crd > $(CRD_FILE).tmp
	mv $(CRD_FILE).tmp $(CRD_FILE)
