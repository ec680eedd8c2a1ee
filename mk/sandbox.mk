# Sandbox control plane (mimo_sandbox): binaries built from the Go module proxy on first use
# and cached under $(MIMO_CACHE_DIR) or ~/.cache/mimo-operator; a second run builds nothing.
.PHONY: sandbox-bins sandbox-up sandbox-down sandbox-status

sandbox-bins: $(STAMP)
	$(PY) -m mimo_sandbox.build

sandbox-up: sandbox-bins
	$(PY) -m mimo_sandbox.command sandbox up

sandbox-down: $(STAMP)
	$(PY) -m mimo_sandbox.command sandbox down

sandbox-status: $(STAMP)
	$(PY) -m mimo_sandbox.command sandbox status

# The integration and e2e tiers need the binaries; build them (once) before pytest starts.
test: sandbox-bins
