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
from pathlib import Path

from mimo_operator.sandbox.cluster import Sandbox

WRITE_VERBS = ("apply", "patch", "create", "delete", "update")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    def __init__(self, sandbox: Sandbox, namespace: str, log_dir: Path, resync_seconds: float = 300) -> None:
        self.sandbox = sandbox
        self.namespace = namespace
        self.log_path = log_dir / "operator.log"
        self.resync_seconds = resync_seconds
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0
        self.liveness_port = 0

    def start(self) -> OperatorProcess:
        self.metrics_port, self.liveness_port = free_port(), free_port()
        env = self.sandbox.env()
        env["MIMO_OPERATOR_RESYNC_SECONDS"] = str(self.resync_seconds)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mimo_operator.cli",
                    "run",
                    "-n",
                    self.namespace,
                    "--metrics-port",
                    str(self.metrics_port),
                    "--liveness-port",
                    str(self.liveness_port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self.healthy():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"operator did not report healthy within 30 s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def requests(self, verbs: tuple[str, ...] | None = None) -> float:
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
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
