"""A custom metrics API for the sandbox, serving per-pod values as the Prometheus Adapter would.

The HPA controller in kube-controller-manager reads Pods metrics from `custom.metrics.k8s.io`, an
aggregated API. Here that API is a small HTTPS server in the test process on 127.0.0.1. The
kube-apiserver reaches it through an APIService whose Service is an ExternalName of `localhost` (the
aggregator resolves an ExternalName Service to that host and the APIService's port; Endpoints may
not point at loopback addresses), and checks its certificate against the sandbox CA.

Only what the HPA controller and the aggregator ask for is served: discovery of the group version,
and `GET .../namespaces/{ns}/pods/*/{metric}?labelSelector=...`, answered with the value the test
set for that metric for every pod the selector matches.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from mimo_sandbox.certs import EXTENSION_SERVICE_NAME, EXTENSION_SERVICE_NAMESPACE
from mimo_sandbox.cluster import Sandbox
from mimo_sandbox.pytest_plugin import NotYet, wait_for

GROUP = "custom.metrics.k8s.io"
VERSION = "v1beta2"
APISERVICE = f"{VERSION}.{GROUP}"
_POD_METRIC = re.compile(rf"^/apis/{GROUP}/{VERSION}/namespaces/([^/]+)/pods/\*/([^/]+)$")


class CustomMetricsApi:
    """`with CustomMetricsApi(sandbox, {"metric": "50"}) as api:` registers the API, waits until the
    aggregator reports it Available, and removes the APIService afterwards (an unavailable APIService
    would make every client's discovery complain)."""

    def __init__(self, sandbox: Sandbox, values: dict[str, str]) -> None:
        self.sandbox = sandbox
        self.values = dict(values)
        self.queries: list[tuple[str, str]] = []  # (metric, labelSelector) the HPA asked for
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        ca, cert, key = sandbox.extension_server_tls()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._ca = ca
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> CustomMetricsApi:
        self._thread.start()
        self._register()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sandbox.kubectl("delete", "apiservice", APISERVICE, "--ignore-not-found", check=False)
        self.sandbox.kubectl(
            "-n",
            EXTENSION_SERVICE_NAMESPACE,
            "delete",
            "service",
            EXTENSION_SERVICE_NAME,
            "--ignore-not-found",
            check=False,
        )
        self._server.shutdown()
        self._server.server_close()

    def _register(self) -> None:
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": EXTENSION_SERVICE_NAME, "namespace": EXTENSION_SERVICE_NAMESPACE},
            "spec": {"type": "ExternalName", "externalName": "localhost"},
        }
        api_service = {
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": APISERVICE},
            "spec": {
                "group": GROUP,
                "version": VERSION,
                "service": {
                    "namespace": EXTENSION_SERVICE_NAMESPACE,
                    "name": EXTENSION_SERVICE_NAME,
                    "port": self.port,
                },
                "caBundle": base64.b64encode(self._ca.read_bytes()).decode(),
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
            },
        }
        for obj in (service, api_service):
            self.sandbox.kubectl("apply", "-f", "-", input=json.dumps(obj))

        def available() -> Any:
            got = json.loads(self.sandbox.kubectl("get", "apiservice", APISERVICE, "-o", "json").stdout)
            cond = next(
                (c for c in got.get("status", {}).get("conditions", []) if c["type"] == "Available"), {}
            )
            return cond.get("status") == "True" or NotYet(f"{cond.get('reason')}: {cond.get('message')}")

        wait_for(available, timeout=60, description=f"APIService {APISERVICE} Available")

    def _pods(self, namespace: str, selector: str) -> list[str]:
        proc = self.sandbox.kubectl("-n", namespace, "get", "pods", f"--selector={selector}", "-o", "json")
        return sorted(item["metadata"]["name"] for item in json.loads(proc.stdout)["items"])

    def _metric_values(self, namespace: str, metric: str, selector: str) -> dict[str, Any] | None:
        with self._lock:
            value = self.values.get(metric)
            self.queries.append((metric, selector))
        if value is None:
            return None
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "kind": "MetricValueList",
            "apiVersion": f"{GROUP}/{VERSION}",
            "metadata": {},
            "items": [
                {
                    "describedObject": {
                        "kind": "Pod",
                        "namespace": namespace,
                        "name": pod,
                        "apiVersion": "/v1",
                    },
                    "metric": {"name": metric},
                    "timestamp": now,
                    "windowSeconds": 60,
                    "value": value,
                }
                for pod in self._pods(namespace, selector)
            ],
        }

    def _discovery(self) -> dict[str, Any]:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{GROUP}/{VERSION}",
            "resources": [
                {
                    "name": f"pods/{metric}",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "MetricValueList",
                    "verbs": ["get"],
                }
                for metric in sorted(self.values)
            ],
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                path = unquote(url.path)  # the aggregator forwards the pods wildcard as %2A
                body: dict[str, Any] | None
                if path == f"/apis/{GROUP}/{VERSION}":
                    body = api._discovery()
                elif match := _POD_METRIC.match(path):
                    selector = parse_qs(url.query).get("labelSelector", [""])[0]
                    body = api._metric_values(match[1], match[2], selector)
                else:
                    body = None
                data = json.dumps(
                    body or {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
                )
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
