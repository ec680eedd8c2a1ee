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
# leader: a single-node replica's pods (they serve HTTP); group: every pod of a multi-node replica's
# StatefulSet (its pod 0 serves HTTP, the others run headless).
LABEL_ROLE = f"{GROUP}/role"
LABEL_REPLICA = f"{GROUP}/replica"  # index of the model replica a multi-node group belongs to
LABEL_PLAN_HASH = f"{GROUP}/plan-hash"
# A node holds a verified copy of a node-local weights cache (render/weights.py node_copy_label):
# weights.serving.mimo.dev/<digest of repository, revision, directory> = <commit>. The only node
# field the operator writes; the chart's ValidatingAdmissionPolicy holds it to this prefix.
NODE_COPY_LABEL_PREFIX = "weights.serving.mimo.dev/"
# On a per-node download Job: the node whose copy it fills.
ANNOTATION_NODE = f"{GROUP}/node"
ROLE_LEADER = "leader"
ROLE_GROUP = "group"

# app.kubernetes.io/* recommended labels.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "mimo-operator"
# Set by the API server on every namespace (Kubernetes 1.22+, "Automatic labelling" in the Namespaces
# concept page), so a NetworkPolicy can select a namespace by name.
LABEL_NAMESPACE_NAME = "kubernetes.io/metadata.name"

# vLLM 0.33.0's defaults: `--port` (vllm/entrypoints/common/cli_args.py) and `--master-port`
# (ParallelConfig.master_port, vllm/config/parallel.py), the torch.distributed master of a multi-node group.
HTTP_PORT = 8000
MASTER_PORT = 29501
# vLLM 0.33.0's `--data-parallel-rpc-port` default (ParallelConfig.data_parallel_rpc_port): where the
# head of data parallel ranks spanning nodes hands engines on other nodes their work (ZMQ).
DP_RPC_PORT = 29550

MAX_NAME_LENGTH = 42  # leaves room for "-pods", "-r<N>" and the StatefulSet pod suffix in 63 chars
