"""How the fetcher tells the world how far it is, without any access to the Kubernetes API.

Four outlets, none of which needs credentials in the fetcher pod (it mounts no service-account token):
- one JSON line per interval on stdout, for a person (`kubectl logs job/<job>`); the operator does not
  read it, because `pods/log` cannot be granted for the Job's pods alone and the operator is
  deliberately not allowed the logs of every pod in the namespace;
- the pod's termination message (`/dev/termination-log`): the final line, with the failure reason,
  kept by the kubelet in the pod status after the container ends, even when logs are gone; this is
  what the operator reads (it lists pods);
- `progress.json` in the weights volume, for a person with a shell and for the next fetcher run;
- `GET /progress` on the pod's progress port (fetcher/progress_server.py): the latest line, which the
  operator reads by pod IP while the download runs (percent and ETA in `kubectl get mimo`).
A ConfigMap or an annotation written by the fetcher would need API credentials in the pod that moves
hundreds of gigabytes from the internet; the four outlets above need none.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mimo_operator.fetcher.outcome import FailureKind

# The kubelet keeps at most 4096 bytes of a termination message
# (https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/).
TERMINATION_MESSAGE_LIMIT = 4096


@dataclass
class FetchProgress:
    """Shared between the downloading thread and the reporter; guarded by `lock`."""

    repo: str
    revision: str
    phase: str = "Resolving"
    sha: str | None = None
    bytes_total: int = 0
    files_total: int = 0
    files_done: int = 0
    bytes_in_done_files: int = 0
    current_part: Path | None = None
    """The partial file being written now; its size counts towards bytesDone."""
    transferring: bool = False
    reason: str | None = None
    message: str | None = None
    config: str | None = None
    """The complete checkpoint's config.json for the planner (fetcher/config_report.py)."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def bytes_done(self) -> int:
        with self.lock:
            done = self.bytes_in_done_files
            part = self.current_part
        if part is not None:
            with contextlib.suppress(FileNotFoundError):  # renamed into place a moment ago
                done += part.stat().st_size
        return done

    def fail(self, kind: FailureKind, message: str) -> None:
        with self.lock:
            self.phase = "Failed"
            self.reason = kind.reason
            self.message = message
            self.transferring = False


class RateWindow:
    """Bytes per second over the last `seconds`, from (time, bytes done) samples."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> float:
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.seconds:
            self.samples.popleft()
        first_time, first_done = self.samples[0]
        if now <= first_time:
            return 0.0
        return max(0.0, (done - first_done) / (now - first_time))


class Reporter:
    """Writes snapshots of a FetchProgress to stdout, the volume and finally the termination log."""

    def __init__(
        self,
        progress: FetchProgress,
        *,
        progress_file: Path,
        termination_log: Path | None,
        out: IO[str] = sys.stdout,
        rate_window_seconds: float = 30.0,
    ) -> None:
        self.progress = progress
        self.progress_file = progress_file
        self.termination_log = termination_log
        self.out = out
        self.rate = RateWindow(rate_window_seconds)
        self.last_rate = 0.0
        self.last: dict[str, Any] = {
            "phase": progress.phase,
            "repo": progress.repo,
            "revision": progress.revision,
        }
        """The latest report, as `GET /progress` answers it (fetcher/progress_server.py)."""

    def snapshot(self) -> dict[str, Any]:
        done = self.progress.bytes_done()
        self.last_rate = self.rate.add(time.monotonic(), done)
        p = self.progress
        with p.lock:
            remaining = max(0, p.bytes_total - done)
            eta = int(remaining / self.last_rate) if self.last_rate > 0 and p.phase == "Downloading" else None
            return {
                "phase": p.phase,
                "repo": p.repo,
                "revision": p.revision,
                "sha": p.sha,
                "bytesDone": done,
                "bytesTotal": p.bytes_total,
                "bytesPerSecond": int(self.last_rate),
                "etaSeconds": eta,
                "filesDone": p.files_done,
                "filesTotal": p.files_total,
                "reason": p.reason,
                "message": p.message,
                **({"config": p.config} if p.config is not None else {}),
            }

    def report(self) -> dict[str, Any]:
        """Emit one snapshot to stdout and the volume; returns it."""
        snap = self.snapshot()
        self.last = snap
        line = json.dumps(snap, separators=(",", ":"))
        self.out.write(line + "\n")
        self.out.flush()
        self._write_progress_file(line)
        return snap

    def finish(self) -> dict[str, Any]:
        """The last report, also written as the container's termination message."""
        snap = self.report()
        if self.termination_log is not None:
            text = json.dumps(snap, separators=(",", ":"))
            if len(text.encode()) > TERMINATION_MESSAGE_LIMIT:
                snap = {**snap, "message": (snap["message"] or "")[:1000]}
                text = json.dumps(snap, separators=(",", ":"))
            if len(text.encode()) > TERMINATION_MESSAGE_LIMIT:
                # A config too large to tell: the operator says it was not reported, never guesses.
                snap = {key: value for key, value in snap.items() if key != "config"}
                text = json.dumps(snap, separators=(",", ":"))
            # Not in a pod, or the kubelet gave us no file: stdout still has the same line.
            with contextlib.suppress(OSError):
                self.termination_log.write_text(text)
        return snap

    def _write_progress_file(self, line: str) -> None:
        try:
            self.progress_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.progress_file.with_suffix(".tmp")
            tmp.write_text(line + "\n")
            os.replace(tmp, self.progress_file)
        except OSError:
            pass  # a full or read-only volume must not hide the real failure
