"""Pure deployment planning: (request, model profile) -> Plan or PlanError. No I/O, no Kubernetes."""

from mimo_operator.planner.search import plan
from mimo_operator.planner.types import (
    Layout,
    ParallelismOverrides,
    Plan,
    PlanError,
    PlanRequest,
    Rejected,
)

__all__ = ["Layout", "ParallelismOverrides", "Plan", "PlanError", "PlanRequest", "Rejected", "plan"]
