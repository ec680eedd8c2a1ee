"""The MimoDeployment CustomResourceDefinition, generated from the pydantic models.

The models in `spec.py` and `status.py` are the single source of truth; this module turns their JSON
schema into the *structural* OpenAPI schema the API server requires (no `$ref`, no `title`, no
`anyOf [X, null]`, OpenAPI 3.0 exclusive bounds) and adds what JSON schema cannot say: CEL rules that
refuse bad input at `kubectl apply` with a message naming the field, the scale subresource and the
printer columns. `crds/` holds the committed output; a unit test fails when it is stale.

Regenerate with `make crd`, which runs `python -m mimo_operator.api.crd > crds/<CRD name>.yaml`.
"""

from __future__ import annotations

import copy
import re
import sys
from typing import Any

import yaml

from mimo_operator.api.constants import (
    CRD_NAME,
    GROUP,
    KIND,
    MAX_NAME_LENGTH,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
)
from mimo_operator.api.flags import OWNED_FLAG_SOURCES, OWNED_FLAGS, owned_flag_pattern
from mimo_operator.api.resource import ObjectMeta
from mimo_operator.api.spec import AutoscalingSpec, MimoDeploymentSpec
from mimo_operator.api.status import MimoDeploymentStatus

__all__ = ["build_crd", "crd_yaml"]

Schema = dict[str, Any]

HEADER = (
    "# Generated from operator/mimo_operator/api by `make crd` (python -m mimo_operator.api.crd).\n"
    "# Do not edit: change the pydantic models and regenerate; tests/unit/test_crd.py fails when stale.\n"
)

# Keys of a schema node in the order they are written: what a person reads first comes first.
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "x-kubernetes-int-or-string",
    "anyOf",
    "enum",
    "minimum",
    "exclusiveMinimum",
    "maximum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "default",
    "items",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "properties",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "required",
    "x-kubernetes-validations",
)


def _resolve_ref(ref: str, defs: Schema) -> Schema:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise ValueError(f"unsupported $ref {ref!r}: only local $defs are inlined")
    resolved: Schema = defs[ref.removeprefix(prefix)]
    return resolved


def _order(node: Schema) -> Schema:
    rank = {key: i for i, key in enumerate(_KEY_ORDER)}
    return {key: node[key] for key in sorted(node, key=lambda k: (rank.get(k, len(rank)), k))}


def _int_or_string(integer: Schema, string: Schema, siblings: Schema) -> Schema:
    """An int-or-string field: an integer range, or one of a few words (e.g. maxModelLen: 4096 | auto).

    The API server accepts `x-kubernetes-int-or-string` only with exactly
    `anyOf: [{type: integer}, {type: string}]` (apiextensions-apiserver, schema/validation.go,
    isIntOrStringAnyOfPattern compares with reflect.DeepEqual), so the bounds cannot live inside the
    `anyOf` branches. They live on the node instead: JSON-schema `minimum`/`maximum` only apply to
    numbers and `pattern` only to strings, which gives the same meaning as the pydantic union.
    """
    words = string.get("enum") or [string["const"]]
    node: Schema = {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": "^(" + "|".join(re.escape(str(w)) for w in words) + ")$",
    }
    for key in ("minimum", "maximum"):
        if key in integer:
            node[key] = integer[key]
    if "description" in siblings:
        node["description"] = siblings["description"]
    return node


def _structural(node: Schema, defs: Schema) -> Schema:
    """Rewrite one pydantic JSON-schema node (and its children) as a structural OpenAPI v3 node."""
    if "$ref" in node:
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        # The field's own keys (its description above all) win over the referenced model's.
        return _structural({**_resolve_ref(node["$ref"], defs), **siblings}, defs)
    if "anyOf" in node:
        siblings = {k: v for k, v in node.items() if k != "anyOf"}
        # Optional[X] is pydantic's `anyOf [X, null]`; in a CRD "optional" just means not required.
        branches = [b for b in node["anyOf"] if b != {"type": "null"}]
        branches = [
            {**_resolve_ref(b["$ref"], defs), **{k: v for k, v in b.items() if k != "$ref"}}
            if "$ref" in b
            else b
            for b in branches
        ]
        if len(branches) == 1:
            return _structural({**branches[0], **siblings}, defs)
        types = sorted(b.get("type", "") for b in branches)
        if len(branches) == 2 and types == ["integer", "string"]:
            integer = next(b for b in branches if b.get("type") == "integer")
            string = next(b for b in branches if b.get("type") == "string")
            return _order(_int_or_string(integer, string, siblings))
        raise ValueError(f"cannot express anyOf {node['anyOf']!r} in a structural schema")

    out: Schema = {}
    for key, value in node.items():
        if key in ("title", "default", "$defs"):
            # Deliberately no `default`: the API server would then write fields the user did not,
            # which GitOps tools report as drift. The operator applies the pydantic defaults on parse.
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            # JSON schema 2020-12 (pydantic) gives the bound itself; OpenAPI 3.0 wants a flag.
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        elif key == "additionalProperties":
            if value is True:
                # Free-form Kubernetes objects (EnvVar, Toleration, Affinity): kept as written,
                # validated by the API server when the operator puts them into a pod.
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out["additionalProperties"] = _structural(value, defs)
            # additionalProperties: false is pydantic's extra="forbid"; a structural schema may not
            # combine it with `properties`, and pruning (or fieldValidation=Strict) does that job.
        elif key == "properties":
            out["properties"] = {name: _structural(child, defs) for name, child in value.items()}
        elif key == "description":
            # Docstrings wrap at the source's line length; kubectl explain re-wraps the text itself.
            out["description"] = " ".join(value.split())
        elif key == "items":
            out["items"] = _structural(value, defs)
        else:
            out[key] = copy.deepcopy(value)
    return _order(out)


def _schema_of(model: type[MimoDeploymentSpec] | type[MimoDeploymentStatus]) -> Schema:
    raw = model.model_json_schema(by_alias=True)
    defs: Schema = raw.pop("$defs", {})
    return _structural(raw, defs)


def _rule(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> Schema:
    out: Schema = {"rule": rule, "message": message}
    if field_path is not None:
        out["fieldPath"] = field_path
    if reason is not None:
        out["reason"] = reason
    return out


def _add_rules(node: Schema, *rules: Schema) -> None:
    node.setdefault("x-kubernetes-validations", []).extend(rules)
    node.update(_order(node))


def _extra_args_rules() -> list[Schema]:
    """One rule per spec field that owns flags, so the message can say where to set the value instead."""
    by_source: dict[str, list[str]] = {}
    for flag in OWNED_FLAGS:
        by_source.setdefault(OWNED_FLAG_SOURCES.get(flag, ""), []).append(flag)
    rules = []
    for source, flags in by_source.items():
        where = f"set {source} instead" if source else "it derives them from the plan and the pod's role"
        rules.append(
            _rule(
                f"self.all(a, !a.matches('{owned_flag_pattern(flags)}'))",
                f"spec.serving.extraArgs must not contain {', '.join(flags)}: "
                f"the operator owns {'this flag' if len(flags) == 1 else 'these flags'}; {where}",
                reason="FieldValueForbidden",
            )
        )
    return rules


def _spec_schema() -> Schema:
    spec = _schema_of(MimoDeploymentSpec)
    spec = {
        "description": (
            "What to serve (model, precision, GPU kind, context); the planner derives how (GPU count, "
            "parallel sizes, max-model-len) and reports it in status.plan."
        ),
        **spec,
    }
    props = spec["properties"]
    # The one default in the schema, and why: the scale subresource's GET fails with an internal error
    # when .spec.replicas is absent (apiextensions-apiserver registry/customresource/etcd.go,
    # ScaleREST.Get: "the spec replicas field does not exist"), so an HPA could never read a
    # MimoDeployment that leaves replicas out, which is what GitOps users are told to do when
    # autoscaling is on. The value is the model's own default, so the operator's view is unchanged.
    props["replicas"] = _order(
        {**props["replicas"], "default": MimoDeploymentSpec.model_fields["replicas"].default}
    )

    auto_fields = AutoscalingSpec.model_fields
    min_default, max_default = auto_fields["min_replicas"].default, auto_fields["max_replicas"].default
    # Absent fields take the model's defaults (the schema has none, see _structural), so the rule
    # compares what the operator will use.
    _add_rules(
        props["autoscaling"],
        _rule(
            f"(has(self.minReplicas) ? self.minReplicas : {min_default})"
            f" <= (has(self.maxReplicas) ? self.maxReplicas : {max_default})",
            "spec.autoscaling.minReplicas must be less than or equal to spec.autoscaling.maxReplicas"
            f" (defaults: minReplicas {min_default}, maxReplicas {max_default})",
            field_path=".minReplicas",
            reason="FieldValueInvalid",
        ),
    )
    _add_rules(
        props["gpu"],
        _rule(
            "!has(self.type) || self.type != 'custom' || has(self.memoryGiB)",
            "spec.gpu.memoryGiB is required when spec.gpu.type is custom",
            field_path=".memoryGiB",
            reason="FieldValueRequired",
        ),
    )
    _add_rules(
        props["model"]["properties"]["cache"],
        _rule(
            "[has(self.persistentVolumeClaim), has(self.hostPath), has(self.volumeClaimTemplate)]"
            ".filter(x, x).size() <= 1",
            "spec.model.cache: set one of persistentVolumeClaim, hostPath or volumeClaimTemplate",
            reason="FieldValueForbidden",
        ),
        _rule(
            "!has(self.fetch) || self.fetch != 'job' || !has(self.persistentVolumeClaim)"
            " || !has(self.persistentVolumeClaim.readOnly) || !self.persistentVolumeClaim.readOnly",
            "spec.model.cache.fetch: job cannot write to a readOnly persistentVolumeClaim",
            reason="FieldValueForbidden",
        ),
    )
    _add_rules(props["serving"]["properties"]["extraArgs"], *_extra_args_rules())
    return spec


def _status_schema() -> Schema:
    status = _schema_of(MimoDeploymentStatus)
    status = {
        "description": "What the operator planned and observed; written only by the operator.",
        **status,
    }
    conditions = status["properties"]["conditions"]
    # One condition per type, merged by type under server-side apply (the metav1.Condition convention).
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    status["properties"]["conditions"] = _order(conditions)
    return status


def _root_schema() -> Schema:
    # The API server allows any DNS subdomain as a custom resource's name; the children need a DNS
    # label (Services are named after the deployment), which is what ObjectMeta parses.
    name_pattern = ObjectMeta.model_json_schema()["properties"]["name"]["pattern"]
    return {
        "description": "MimoDeployment serves Xiaomi MiMo-V2-Flash on vLLM with a planned GPU layout.",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _spec_schema(),
            "status": _status_schema(),
        },
        "x-kubernetes-validations": [
            _rule(
                f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                f"metadata.name must be at most {MAX_NAME_LENGTH} characters: the names of the"
                " children (<name>-pods, <name>-r<N>-<pod>) need the rest of the 63-character limit",
                reason="FieldValueInvalid",
            ),
            _rule(
                f"self.metadata.name.matches('{name_pattern}')",
                "metadata.name must be a DNS label (lowercase letters, digits and '-', starting with a"
                " letter): the Services the operator creates are named after it",
                reason="FieldValueInvalid",
            ),
        ],
    }


def _printer_columns() -> list[Schema]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": ".status.ready",
            "description": "readyReplicas/replicas",
        },
        {
            "name": "GPUs",
            "type": "integer",
            "jsonPath": ".status.plan.gpusPerReplica",
            "description": "GPUs per replica",
        },
        {"name": "Max-Len", "type": "integer", "jsonPath": ".status.plan.maxModelLen"},
        {
            "name": "Weights",
            "type": "string",
            "jsonPath": ".status.weights.progress",
            "description": "download progress of the weights: percent and time left",
        },
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        {"name": "Plan", "type": "string", "jsonPath": ".status.plan.summary", "priority": 1},
    ]


def build_crd() -> dict[str, Any]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of MimoDeployment, as a plain dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["all"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": _root_schema()},
                    "subresources": {
                        "status": {},
                        # The autoscaler writes spec.replicas here; the request runs the full schema
                        # and CEL validation, which is why no rule forbids replicas beside autoscaling.
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": _printer_columns(),
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD as YAML with a header; byte-for-byte stable for the same models.

    Lines are not folded: a folded CEL rule or regex is correct YAML but hard to read and to grep.
    """
    body = yaml.safe_dump(build_crd(), sort_keys=False, width=1 << 16, allow_unicode=True)
    return HEADER + "---\n" + body


if __name__ == "__main__":
    sys.stdout.write(crd_yaml())
