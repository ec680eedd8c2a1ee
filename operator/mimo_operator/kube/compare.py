"""Does a live object already match what we would apply? If so, applying is a wasted write.

Two questions. `covers`: every field we set is present with an equal value, where an omitted empty
value (false, 0, "", [], {}) equals a missing field (the server drops them on output) and quantities
compare by amount ("0.5" == "500m"). `owns_more`: the live object still has a field that our field
manager applied earlier and the desired object no longer sets (read from the server's managedFields),
which only an apply removes: without this, dropping an optional field would never reach the cluster.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$")
_FACTORS = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def _quantity(value: str) -> Decimal | None:
    match = _QUANTITY.match(value)
    if not match:
        return None
    try:
        return Decimal(match.group(1)) * _FACTORS[match.group(2)]
    except InvalidOperation:
        return None


def _empty(value: Any) -> bool:
    return value in (False, 0, "", None) or value in ([], {})


def covers(live: Any, desired: Any) -> bool:
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(covers(live[k], v) if k in live else _empty(v) for k, v in desired.items())
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(live) == len(desired)
            and all(covers(a, b) for a, b in zip(live, desired, strict=True))
        )
    if live == desired:
        return True
    if isinstance(live, str) and isinstance(desired, str):
        a, b = _quantity(live), _quantity(desired)
        return a is not None and a == b
    return False


def applied_fields(live: dict[str, Any], field_manager: str) -> dict[str, Any] | None:
    """The fieldsV1 set that `field_manager` last applied to `live`, as the server recorded it."""
    for entry in live.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") == field_manager and entry.get("operation") == "Apply":
            fields: dict[str, Any] = entry.get("fieldsV1") or {}
            return fields
    return None


def _item_for(key: str, desired: list[Any]) -> Any:
    """The list item a `k:{...}` key names: every key field the desired item sets matches (a key
    field the server defaults, such as a port's protocol, may be absent from what we render)."""
    ident = json.loads(key[2:])
    for item in desired:
        if (
            isinstance(item, dict)
            and any(k in item for k in ident)
            and all(item.get(k, v) == v for k, v in ident.items())
        ):
            return item
    return None


def owns_more(fields: dict[str, Any], desired: Any) -> bool:
    """`fields` (a managedFields fieldsV1 tree) holds a field that `desired` does not set."""
    for key, below in fields.items():
        if key == ".":
            continue
        if key.startswith("f:"):
            name = key[2:]
            if not isinstance(desired, dict) or name not in desired:
                return True
            if below and owns_more(below, desired[name]):
                return True
        elif key.startswith("k:"):
            item = _item_for(key, desired) if isinstance(desired, list) else None
            if item is None or (below and owns_more(below, item)):
                return True
        elif key.startswith("v:"):
            if not isinstance(desired, list) or json.loads(key[2:]) not in desired:
                return True
        elif key.startswith("i:"):
            index = int(key[2:])
            if not isinstance(desired, list) or index >= len(desired):
                return True
            if below and owns_more(below, desired[index]):
                return True
    return False


def up_to_date(live: dict[str, Any] | None, desired: dict[str, Any], field_manager: str) -> bool:
    """Applying `desired` would change nothing: it is covered, and nothing we applied before is gone
    from it."""
    if live is None or not covers(live, desired):
        return False
    fields = applied_fields(live, field_manager)
    return fields is None or not owns_more(fields, desired)
