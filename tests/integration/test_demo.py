"""`make demo` as a person runs it: non-interactive it must end with Ready deployments; interactive,
stopped with Ctrl-C (SIGINT) or `kill` (SIGTERM), it must leave no process behind."""

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mimo_sandbox.pytest_plugin import NotYet, wait_for

pytestmark = pytest.mark.sandbox
REPO = Path(__file__).resolve().parents[2]
READY_LINE = "The sandbox stays up until Ctrl-C."


def test_demo_prints_ready_deployments_plans_and_the_infeasible_event() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mimo_operator.cli", "demo", "--non-interactive"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    table = out.split("$ kubectl get mimo -n mimo-demo -o wide\n", 1)[1].split("\n\n", 1)[0].splitlines()
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["mimo-fp8-h100"][1:5] == ["Ready", "1/1", "8", "131072"]
    assert rows["mimo-bf16-h100"][1:4] == ["Ready", "1/1", "16"]
    assert rows["mimo-fp8-h200"][1:4] == ["Ready", "1/1", "4"]
    assert rows["mimo-infeasible"][1] == "Failed"
    assert "GPUs/replica 16 on 2 node(s), TP8 PP2" in out
    assert "event Warning NeedsMoreThanOneNode" in out
    # The weights come first: the deployment whose Job fetches them was seen Downloading, then Ready.
    phases = out.split("kubectl get mimo --watch):\n", 1)[1].split("\n\n", 1)[0]
    seen = {line.split(":")[0].strip(): line.split(": ", 1)[1].split(" -> ") for line in phases.splitlines()}
    assert seen["mimo-fp8-h100"][0] == "Downloading" and seen["mimo-fp8-h100"][-1] == "Ready", seen
    assert seen["mimo-infeasible"] == ["Failed"], seen


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], start time [19])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _descendants(root: int) -> dict[tuple[int, str], str]:
    """Every process below `root`, keyed by (pid, start time) so a reused pid is not mistaken for
    it later, with its command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: dict[tuple[int, str], str] = {}
    pending = list(children.get(root, []))
    while pending:
        pid = pending.pop()
        fields = _stat(pid)
        if fields is None:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        found[(pid, fields[19])] = cmdline
        pending.extend(children.get(pid, []))
    return found


def _running(key: tuple[int, str]) -> bool:
    fields = _stat(key[0])
    return fields is not None and fields[19] == key[1] and fields[0] != "Z"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_interactive_demo_ends_every_process_it_started(signum: int) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "mimo_operator.cli", "demo"],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # only the demo gets the signal, as with `kill <pid>`
    )
    lines: queue.Queue[str] = queue.Queue()
    out: list[str] = []
    assert demo.stdout is not None
    stdout = demo.stdout
    threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
    started: dict[tuple[int, str], str] = {}
    try:

        def ready() -> object:
            while not lines.empty():
                out.append(lines.get())
            if demo.poll() is not None:
                raise AssertionError(f"the demo exited with {demo.returncode}:\n{''.join(out)}")
            return any(READY_LINE in line for line in out) or NotYet(out[-1:] or None)

        wait_for(ready, timeout=600, description="the demo to say it is ready")
        started = _descendants(demo.pid)
        commands = " ".join(started.values())
        for expected in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            assert expected in commands, commands
        assert "mimo_operator.cli run" in commands, commands

        os.kill(demo.pid, signum)
        status = demo.wait(timeout=120)

        def left() -> object:
            running = [cmd for key, cmd in started.items() if _running(key)]
            return not running or NotYet(running)

        wait_for(left, timeout=30, description="every process the demo started to be gone")
        assert status == 0  # stopped the way Ctrl-C stops it, not killed by the signal
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        for key in started:
            if _running(key):
                os.kill(key[0], signal.SIGKILL)
