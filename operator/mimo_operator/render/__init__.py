"""Pure rendering: (MimoDeployment, Plan, RenderConfig) -> child manifests and status. No I/O."""

from mimo_operator.render.children import CHILD_KINDS, child_kinds, plan_hash, render_children
from mimo_operator.render.config import DEFAULT_VLLM_IMAGE, VLLM_VERSION, RenderConfig
from mimo_operator.render.planning import plan_for

__all__ = [
    "CHILD_KINDS",
    "DEFAULT_VLLM_IMAGE",
    "VLLM_VERSION",
    "RenderConfig",
    "child_kinds",
    "plan_for",
    "plan_hash",
    "render_children",
]
