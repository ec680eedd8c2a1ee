"""`python -m mimo_operator.fetcher`: the command of the download Job.

The download runs in a worker thread; the main thread reports progress every interval and is the
stall watchdog. A stalled socket read cannot be interrupted from outside, so on a stall the process
reports, writes its termination message and ends; the daemon worker ends with it and its partial
file stays for the next attempt to resume.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from pathlib import Path

from huggingface_hub.utils import disable_progress_bars

from mimo_operator.fetcher.download import STATE_DIR, Fetcher, FetchRequest
from mimo_operator.fetcher.outcome import FailureKind, FetchFailed
from mimo_operator.fetcher.progress import FetchProgress, Reporter
from mimo_operator.fetcher.progress_server import serve_progress

# Where huggingface_hub sends requests unless HF_ENDPOINT says otherwise (constants.py there).
DEFAULT_ENDPOINT = "https://huggingface.co"
# Kubernetes' default terminationMessagePath for a container.
DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")

log = logging.getLogger("mimo_operator.fetcher")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mimo_operator.fetcher",
        description="Download one pinned model checkpoint into a directory, verified and resumable.",
    )
    parser.add_argument("--repo", required=True, help="Hub repository id, e.g. XiaomiMiMo/MiMo-V2-Flash")
    parser.add_argument("--revision", default="main", help="branch, tag or commit sha (default: main)")
    parser.add_argument("--dest", required=True, type=Path, help="directory that receives the checkpoint")
    parser.add_argument(
        "--endpoint",
        default=os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT),
        help="Hub endpoint (default: $HF_ENDPOINT or the public Hub)",
    )
    parser.add_argument(
        "--stall-seconds",
        type=float,
        default=300.0,
        help="give up when no byte arrived for this long during a transfer (default: 300)",
    )
    parser.add_argument(
        "--progress-interval", type=float, default=5.0, help="seconds between progress reports (default: 5)"
    )
    parser.add_argument(
        "--progress-port",
        type=int,
        default=None,
        help="answer GET /progress with the latest report on this port (default: no server)",
    )
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=None,
        help="file for the final report (default: /dev/termination-log when it exists)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    disable_progress_bars()  # stdout carries the machine-readable progress lines only
    termination_log = args.termination_log
    if termination_log is None and DEFAULT_TERMINATION_LOG.exists():
        termination_log = DEFAULT_TERMINATION_LOG
    token = os.environ.get("HF_TOKEN") or None
    request = FetchRequest(
        repo=args.repo,
        revision=args.revision,
        dest=args.dest,
        endpoint=args.endpoint.rstrip("/"),
        token=token,
    )
    progress = FetchProgress(repo=args.repo, revision=args.revision)
    reporter = Reporter(
        progress, progress_file=args.dest / STATE_DIR / "progress.json", termination_log=termination_log
    )
    server = None
    if args.progress_port is not None:
        server = serve_progress(lambda: reporter.last, args.progress_port)
    try:
        return run_with_watchdog(
            Fetcher(request, progress), reporter, args.stall_seconds, args.progress_interval
        )
    finally:
        if server is not None:
            server.shutdown()


def run_with_watchdog(fetcher: Fetcher, reporter: Reporter, stall_seconds: float, interval: float) -> int:
    """Run the fetch in a worker thread; report and watch for stalls here. Returns the exit code."""
    progress = fetcher.progress
    failure: list[FetchFailed] = []

    def work() -> None:
        try:
            fetcher.run()
        except FetchFailed as err:
            failure.append(err)
        except Exception as err:  # an unforeseen error still ends in one sentence and an exit code
            log.exception("fetch failed")
            failure.append(FetchFailed(FailureKind.TRANSFER_ERROR, f"{type(err).__name__}: {err}"))

    worker = threading.Thread(target=work, name="fetch", daemon=True)
    worker.start()
    last_done = progress.bytes_done()
    last_moved = time.monotonic()
    tick = min(interval, max(stall_seconds / 4, 0.05))
    next_report = time.monotonic()
    while True:
        worker.join(tick)
        if not worker.is_alive():
            break
        now = time.monotonic()
        done = progress.bytes_done()
        with progress.lock:
            transferring = progress.transferring
        if done != last_done or not transferring:
            last_done, last_moved = done, now
        elif now - last_moved >= stall_seconds:
            failure.append(
                FetchFailed(
                    FailureKind.STALLED,
                    f"no data arrived for {stall_seconds:g} s at {done} of {progress.bytes_total} bytes",
                )
            )
            break
        if now >= next_report:
            reporter.report()
            next_report = now + interval
    if failure:
        progress.fail(failure[0].kind, failure[0].message)
        reporter.finish()
        log.error("%s: %s", failure[0].kind.reason, failure[0].message)
        return failure[0].kind.exit_code
    reporter.finish()
    return 0
