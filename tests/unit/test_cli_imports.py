"""What `mimo-operator run` loads: the operator's pod must not carry the developer sandbox.

The sandbox (mimo_sandbox: Go builds, certificates, process supervision) and the `cryptography` it needs
are tooling; the CLI imports them only inside its `sandbox` and `demo` sub-commands. Each check runs the
CLI in a fresh interpreter, because this test process has long since imported the sandbox's pytest plugin.
"""

from __future__ import annotations

import json
import subprocess
import sys

# Runs `main(argv)` and prints its exit status and which tooling modules ended up in sys.modules.
PROBE = """
import contextlib, io, json, sys
from mimo_operator.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        status = main(sys.argv[1:])
    except SystemExit as exc:
        status = exc.code
tooling = sorted(m for m in sys.modules if m.split(".")[0] in ("mimo_sandbox", "cryptography"))
print(json.dumps({"status": status, "tooling": tooling}))
"""


def probe(*argv: str) -> tuple[int, list[str]]:
    """Exit status of `mimo-operator ARGV` and the tooling modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True, timeout=120
    )
    result = json.loads(done.stdout)
    return int(result["status"]), list(result["tooling"])


def test_run_loads_neither_the_sandbox_nor_cryptography() -> None:
    # A settings file that does not exist: `run` imports the controller, kopf and the lease code, then
    # stops with a usage error before it would contact a cluster.
    status, tooling = probe("run", "--namespace", "default", "--config", "/nonexistent/operator.yaml")
    assert status == 1  # got past its imports to the configuration check
    assert tooling == []


def test_sandbox_subcommand_reaches_the_sandbox() -> None:
    # The other side of the same probe: `sandbox --help` is served by mimo_sandbox's own parser.
    status, tooling = probe("sandbox", "--help")
    assert status == 0
    assert "mimo_sandbox.command" in tooling
