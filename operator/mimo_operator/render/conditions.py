"""Setting one condition in a list of conditions, the way Kubernetes conditions are meant to move."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mimo_operator.api import Condition


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
    generation: int | None,
) -> list[Condition]:
    """Conditions with `type_` set; lastTransitionTime moves only when the status flips."""
    value: Any = "True" if status else "False"
    previous = next((cond for cond in conditions if cond.type == type_), None)
    since = previous.last_transition_time if previous and previous.status == value else now
    updated = Condition(
        type=type_,
        status=value,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if cond.type == type_ else cond for cond in conditions]
