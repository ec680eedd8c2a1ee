"""The one place the sandbox's third-party versions are pinned.

Every binary the sandbox runs is built from the Go module proxy at exactly these versions and cached
under a directory named after the version, so bumping a number here is all it takes to rebuild.
"""

from __future__ import annotations

from typing import Final

# Kubernetes release the control plane (kube-apiserver, kube-controller-manager, kube-scheduler) and
# kubectl are built from. Its staging modules (k8s.io/api, k8s.io/client-go, ...) are published as
# v0.<minor>.<patch> of the same release.
KUBERNETES_VERSION: Final = "v1.35.4"

# etcd v3.6 is the line kube-apiserver 1.35 is tested against (Debian's 3.4 is too old).
ETCD_VERSION: Final = "v3.6.16"

# kwok v0.8 no longer embeds default Stages; we pass them from its module directory.
KWOK_VERSION: Final = "v0.8.0"

# helm v3.22's go.mod has no replace directives, so `go install` works without a wrapper module.
HELM_VERSION: Final = "v3.22.0"


def kubernetes_staging_version(kubernetes_version: str = KUBERNETES_VERSION) -> str:
    """The version the staging modules are tagged with for a Kubernetes release: v1.35.4 -> v0.35.4."""
    major, minor, patch = kubernetes_version.removeprefix("v").split(".", 2)
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes_version!r}")
    return f"v0.{minor}.{patch}"


# Upstream CRDs the sandbox installs so the operator's optional children (and the chart's monitoring
# objects) are validated by the real schemas, not by ones we wrote. Each ships inside its Go module, which
# the module proxy serves; sandbox/upstream.py copies the files out by version.
# KEDA: config/crd/bases/keda.sh_scaledobjects.yaml (https://github.com/kedacore/keda, tag v2.21.0).
KEDA_VERSION: Final = "v2.21.0"
# Prometheus Operator: example/prometheus-operator-crd/ (PodMonitor, ServiceMonitor, PrometheusRule).
PROMETHEUS_OPERATOR_VERSION: Final = "v0.85.0"
# Gateway API standard channel: config/crd/standard/ (GatewayClass, Gateway, HTTPRoute, ReferenceGrant).
GATEWAY_API_VERSION: Final = "v1.6.3"

# promtool (`promtool check rules`, `promtool test rules` for the chart's alerts). Prometheus 3.x tags its
# Go module as v0.<3xx>.<patch>: v0.316.0 is Prometheus 3.16.0 (the VERSION file in the module says so).
PROMETHEUS_VERSION: Final = "v0.316.0"
