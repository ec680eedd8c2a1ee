"""Names on the wire: API group, kind, labels and annotations the operator reads and writes."""

from __future__ import annotations

GROUP = "serving.mimo.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MimoDeployment"
PLURAL = "mimodeployments"
SINGULAR = "mimodeployment"
SHORT_NAMES = ("mimo", "mimod")
CRD_NAME = f"{PLURAL}.{GROUP}"

# serving.mimo.dev/* labels on every child, so children can be selected per deployment and role.
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_ROLE = f"{GROUP}/role"  # leader (serves HTTP) | worker (headless, multi-node only)
LABEL_REPLICA = f"{GROUP}/replica"  # index of the model replica a multi-node group belongs to
LABEL_PLAN_HASH = f"{GROUP}/plan-hash"
ROLE_LEADER = "leader"
ROLE_WORKER = "worker"

# app.kubernetes.io/* recommended labels.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "mimo-operator"
APP_NAME = "vllm"

# GPU feature discovery labels (NVIDIA gpu-feature-discovery) used for node selection.
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_RESOURCE = "nvidia.com/gpu"

# vLLM ports (model-facts.md): OpenAI API, torch.distributed master, data-parallel RPC.
HTTP_PORT = 8000
MASTER_PORT = 29501
DP_RPC_PORT = 29550

MAX_NAME_LENGTH = 42  # leaves room for "-pods", "-r<N>" and the StatefulSet pod suffix in 63 chars
