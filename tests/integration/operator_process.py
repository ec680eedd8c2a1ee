"""Run `mimo-operator run` as a subprocess against the sandbox, the way it runs in production, and
read its /metrics so tests can count what it sent to the API server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Collection
from pathlib import Path

from mimo_operator.kube.client import WRITE_VERBS
from mimo_sandbox.cluster import Sandbox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    def __init__(
        self,
        sandbox: Sandbox,
        namespace: str,
        log_dir: Path,
        resync_seconds: float = 300,
        *,
        name: str = "operator",
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.namespace = namespace
        self.log_path = log_dir / f"{name}.log"
        self.resync_seconds = resync_seconds
        self.extra_args = args
        self.extra_env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.liveness_port = 0

    def start(self) -> OperatorProcess:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        env = self.sandbox.env()
        env["MIMO_OPERATOR_RESYNC_SECONDS"] = str(self.resync_seconds)
        env.update(self.extra_env)
        argv = ["run", "-n", self.namespace, "--metrics-port", str(self.metrics_port),
                "--liveness-port", str(self.liveness_port), *self.extra_args]  # fmt: skip
        self.proc = launch(argv, env, self.log_path)
        wait_healthy(self.proc, self.liveness_port, self.log_tail)
        return self

    def healthy(self) -> bool:
        return http_status(f"http://127.0.0.1:{self.liveness_port}/healthz") == 200

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def requests(self, verbs: Collection[str] | None = None) -> float:
        total = 0.0
        for name, value in self.metrics().items():
            if name.startswith("mimo_operator_api_requests_total{"):
                verb = name.split('verb="', 1)[1].split('"', 1)[0]
                if verbs is None or verb in verbs:
                    total += value
        return total

    def writes(self) -> float:
        return self.requests(WRITE_VERBS)

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self, sig: int = signal.SIGTERM) -> None:
        stop(self.proc, sig)


def launch(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`mimo-operator <argv>` in its own process group, output appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mimo_operator.cli", *argv],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def wait_healthy(proc: subprocess.Popen[bytes], liveness_port: int, log: Callable[[], str]) -> None:
    """Until /healthz answers 200; fail with the log if the process exits or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"operator exited with {proc.returncode}:\n{log()}")
        if http_status(f"http://127.0.0.1:{liveness_port}/healthz") == 200:
            return
        time.sleep(0.2)
    raise RuntimeError(f"operator did not report healthy within 30 s:\n{log()}")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except OSError:
        return 0


def stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Signal the operator's process group and wait; SIGKILL if it does not exit in 20 s."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
