"""The fetcher's progress over plain HTTP, for the operator to show percent and ETA while it runs.

The pod's termination message tells the operator how a download ended; while it runs, the only other
outlets are the log (`pods/log`, which the operator is not granted) and the volume (which the operator
does not mount). So the fetcher answers `GET /progress` on a port of its pod with its latest report,
the same JSON line it logs. The operator reaches it like Prometheus reaches a scrape target: by pod
IP, admitted by the deployment's NetworkPolicy from the operator's pods only. Still no credentials in
the fetcher pod: it answers, it never calls the API server.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROGRESS_PATH = "/progress"


def serve_progress(latest: Callable[[], dict[str, Any]], port: int, host: str = "") -> ThreadingHTTPServer:
    """Answer GET /progress with `latest()` as JSON on `port` (0: any free port), in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != PROGRESS_PATH:
                self.send_error(404)
                return
            body = json.dumps(latest(), separators=(",", ":")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # stdout carries the progress lines only

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="progress-http", daemon=True).start()
    return server
