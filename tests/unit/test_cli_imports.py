"""What the operator's distribution holds and what `mimo-operator run` loads: no developer sandbox.

The sandbox (mimo_sandbox: Go builds, certificates, process supervision via ctypes) and the `cryptography`
and `kubernetes` client it needs are tooling, shipped as their own distribution (sandbox/pyproject.toml).
The CLI imports them only inside its `sandbox` and `demo` sub-commands. Each check runs the CLI in a fresh
interpreter, because this test process has long since imported the sandbox's pytest plugin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
TOOLING = ("mimo_sandbox", "cryptography", "kubernetes")

# Runs `main(argv)` and prints its exit status and which tooling modules ended up in sys.modules.
PROBE = """
import contextlib, io, json, os, sys
for hidden in os.environ.get("HIDE", "").split():
    sys.modules[hidden] = None  # an import of it fails, as in the operator image where it is absent
from mimo_operator.cli import main
err = io.StringIO()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
    try:
        status = main(sys.argv[1:])
    except SystemExit as exc:
        status = exc.code
tooling = sorted(m for m in sys.modules if m.split(".")[0] in TOOLING and sys.modules[m] is not None)
print(json.dumps({"status": status, "tooling": tooling, "stderr": err.getvalue()}))
"""


def probe(*argv: str, as_in_the_image: bool = False) -> tuple[int, list[str], str]:
    """Exit status of `mimo-operator ARGV`, the tooling modules it loaded, and what it wrote to stderr.

    as_in_the_image: the tooling cannot be imported, as in the operator image, which installs only the
    operator's wheel (in this venv kopf would otherwise load the installed `kubernetes` client for its
    optional model support).
    """
    hide = " ".join(TOOLING) if as_in_the_image else ""
    done = subprocess.run(
        [sys.executable, "-c", f"TOOLING = {TOOLING!r}\n{PROBE}", *argv],
        capture_output=True, text=True, check=True, timeout=120, env={**os.environ, "HIDE": hide},
    )  # fmt: skip
    result = json.loads(done.stdout)
    return int(result["status"]), list(result["tooling"]), str(result["stderr"])


def test_run_loads_neither_the_sandbox_nor_cryptography() -> None:
    # A settings file that does not exist: `run` imports the controller, kopf and the lease code, then
    # stops with a usage error before it would contact a cluster.
    argv = ("run", "--namespace", "default", "--config", "/nonexistent/operator.yaml")
    status, tooling, stderr = probe(*argv)
    assert status == 1, stderr  # got past its imports to the configuration check
    assert not [m for m in tooling if m.split(".")[0] in ("mimo_sandbox", "cryptography")], tooling
    # Without any of the tooling installed, `run` still gets as far.
    status, _, stderr = probe(*argv, as_in_the_image=True)
    assert status == 1 and "/nonexistent/operator.yaml" in stderr, stderr


def test_sandbox_subcommand_reaches_the_sandbox() -> None:
    # The other side of the same probe: `sandbox --help` is served by mimo_sandbox's own parser.
    status, tooling, _ = probe("sandbox", "--help")
    assert status == 0
    assert "mimo_sandbox.command" in tooling


def test_sandbox_and_demo_without_the_sandbox_distribution_say_how_to_get_it() -> None:
    for command in (("sandbox", "up"), ("demo", "--non-interactive")):
        status, tooling, stderr = probe(*command, as_in_the_image=True)
        assert status == 1, stderr
        assert "pip install -e ./sandbox" in stderr
        assert tooling == []


def test_the_operator_wheel_holds_no_tooling_and_requires_none(tmp_path: Path) -> None:
    # The wheel the operator image installs: images/operator/Dockerfile runs `pip wheel .` on a build
    # context of pyproject.toml, README.md and operator/ (.dockerignore); built here from a copy of the
    # same, so the build leaves nothing in the checkout.
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, context / name)
    shutil.copytree(
        REPO / "operator", context / "operator", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir",
         str(tmp_path / "wheels"), str(context)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "wheels").glob("mimo_operator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert packages == {"mimo_operator"}
    assert "mimo_operator/cli.py" in names and "mimo_operator/fetcher/download.py" in names
    required = {Requirement(r).name for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r}
    assert "kopf" in required
    assert required.isdisjoint({"cryptography", "kubernetes", "mimo-sandbox"}), required
