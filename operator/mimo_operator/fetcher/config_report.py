"""The checkpoint's config.json, told to the operator in the fetcher's termination message.

A fine-tune (spec.model.configFrom: checkpoint) is planned from the config.json its own weights carry;
the operator cannot read the weights volume, and the fetcher holds no API credentials, so the fetcher
puts what the planner reads of that file into its final report. The kubelet keeps 4096 bytes of a
termination message; the planning subset of a MiMo config.json (models/checkpoint.py PLANNING_KEYS) is
about 3.5 kB as JSON and under 1.3 kB gzipped and base64-encoded, which leaves the rest of the report
room.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from pathlib import Path
from typing import Any

from mimo_operator.models.checkpoint import planning_config

CONFIG_FILE = "config.json"


def encode_config(config: dict[str, Any]) -> str:
    """The planning subset of a config.json as base64 of gzip of compact JSON."""
    text = json.dumps(planning_config(config), separators=(",", ":"), sort_keys=True)
    return base64.b64encode(gzip.compress(text.encode(), mtime=0)).decode()


def decode_config(encoded: str) -> dict[str, Any]:
    """The inverse of encode_config; ValueError when the text is not one."""
    try:
        data = json.loads(gzip.decompress(base64.b64decode(encoded, validate=True)))
    except (OSError, EOFError, ValueError, binascii.Error) as err:
        raise ValueError(f"not an encoded config.json: {err}") from err
    if not isinstance(data, dict):
        raise ValueError("not an encoded config.json: not a JSON object")
    return data


def config_report(dest: Path) -> str | None:
    """The encoded config.json of a complete checkpoint in `dest`; None when it has none (a repository
    that is not a model) or it is not a JSON object: the operator then says so if it needed it."""
    try:
        config = json.loads((dest / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    return encode_config(config) if isinstance(config, dict) else None
