"""Upstream CRDs (KEDA, Prometheus Operator, Gateway API) and promtool, fetched from the Go module proxy.

The operator renders ScaledObjects, PodMonitors and HTTPRoutes, and the chart ships a ServiceMonitor and a
PrometheusRule. Checking those against CRDs we wrote ourselves only proves they match our own reading
of upstream; the projects publish their CRDs inside their Go modules, so the sandbox installs the real
ones. `go mod download` fetches each module at the version pinned in `versions.py`; the CRD files are
copied into `$MIMO_CACHE_DIR/crds/<project>-<version>/` (nothing in git), and a second call finds them.

promtool is `go install`ed into `$MIMO_CACHE_DIR/bin/promtool-<version>/` the same way the sandbox
binaries are (see build.py), so the chart's alert rules are checked and unit-tested by Prometheus itself.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mimo_sandbox import versions
from mimo_sandbox.build import (
    BuildError,
    binary_path,
    build_lock,
    cache_dir,
    go_env,
    go_install,
    go_mod_download,
)


@dataclass(frozen=True)
class UpstreamCrds:
    """CRD files one upstream project publishes in its Go module."""

    project: str
    module: str
    version: str
    directory: str  # inside the module
    files: tuple[str, ...]

    @property
    def cache(self) -> Path:
        return cache_dir() / "crds" / f"{self.project}-{self.version}"


KEDA = UpstreamCrds(
    "keda",
    "github.com/kedacore/keda/v2",
    versions.KEDA_VERSION,
    "config/crd/bases",
    ("keda.sh_scaledobjects.yaml",),
)
PROMETHEUS_OPERATOR = UpstreamCrds(
    "prometheus-operator",
    "github.com/prometheus-operator/prometheus-operator",
    versions.PROMETHEUS_OPERATOR_VERSION,
    "example/prometheus-operator-crd",
    (
        "monitoring.coreos.com_podmonitors.yaml",
        "monitoring.coreos.com_servicemonitors.yaml",
        "monitoring.coreos.com_prometheusrules.yaml",
    ),
)
# The standard channel's route kinds an HTTPRoute needs: its parent Gateway (and GatewayClass), and
# ReferenceGrant for cross-namespace references.
GATEWAY_API = UpstreamCrds(
    "gateway-api",
    "sigs.k8s.io/gateway-api",
    versions.GATEWAY_API_VERSION,
    "config/crd/standard",
    (
        "gateway.networking.k8s.io_gatewayclasses.yaml",
        "gateway.networking.k8s.io_gateways.yaml",
        "gateway.networking.k8s.io_httproutes.yaml",
        "gateway.networking.k8s.io_referencegrants.yaml",
    ),
)
ALL_CRDS = (KEDA, PROMETHEUS_OPERATOR, GATEWAY_API)


def _say(out: TextIO, msg: str) -> None:
    out.write(f"[mimo-operator sandbox] {msg}\n")
    out.flush()


def ensure_crds(upstream: UpstreamCrds, *, progress: TextIO | None = None) -> list[Path]:
    """Paths of the project's CRD files, fetched from the module proxy on first use."""
    wanted = [upstream.cache / name for name in upstream.files]
    if all(p.is_file() for p in wanted):
        return wanted
    out = progress if progress is not None else sys.stderr
    # Its own lock: a download must not wait behind a 15-minute compile holding the build lock.
    with build_lock("crds"):
        if all(p.is_file() for p in wanted):
            return wanted
        t0 = time.monotonic()
        _say(out, f"go mod download {upstream.module}@{upstream.version} for its CRDs ...")
        info = go_mod_download(f"{upstream.module}@{upstream.version}", env=go_env(), log=None)
        source = Path(info["Dir"]) / upstream.directory
        staging = upstream.cache.with_name(f".{upstream.cache.name}.{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for name in upstream.files:
            if not (source / name).is_file():
                raise BuildError(f"{upstream.module}@{upstream.version} has no {upstream.directory}/{name}")
            # The module cache is read-only; the copy need not be.
            (staging / name).write_bytes((source / name).read_bytes())
        shutil.rmtree(upstream.cache, ignore_errors=True)
        staging.rename(upstream.cache)
        _say(out, f"  {len(upstream.files)} CRDs in {upstream.cache} ({time.monotonic() - t0:.0f}s)")
    return wanted


def ensure_all_crds(*, progress: TextIO | None = None) -> dict[str, list[Path]]:
    return {u.project: ensure_crds(u, progress=progress) for u in ALL_CRDS}


def promtool_path() -> Path:
    return binary_path("promtool", versions.PROMETHEUS_VERSION)


def ensure_promtool(*, progress: TextIO | None = None) -> Path:
    """promtool at the pinned Prometheus version, built with `go install` on first use (~3 min cold)."""
    final = promtool_path()
    if final.is_file():
        return final
    go_install(
        "promtool",
        f"github.com/prometheus/prometheus/cmd/promtool@{versions.PROMETHEUS_VERSION}",
        final,
        progress=progress,
    )
    return final


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mimo_sandbox.upstream [crds|promtool]`: what mk/upstream.mk runs."""
    what = list(argv if argv is not None else sys.argv[1:]) or ["crds", "promtool"]
    try:
        if "crds" in what:
            for project, paths in ensure_all_crds().items():
                for path in paths:
                    sys.stdout.write(f"{project}\t{path}\n")
        if "promtool" in what:
            sys.stdout.write(f"promtool\t{ensure_promtool()}\n")
    except BuildError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
