"""The generated CRD: committed copy is fresh, the schema is structural, and the examples parse.

The API server is the final judge of the schema (tests/integration/test_crd_validation.py installs
it); these checks catch the common mistakes in milliseconds and say which node is wrong.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mimo_operator.api import parse_mimo_deployment
from mimo_operator.api.constants import MAX_NAME_LENGTH
from mimo_operator.api.crd import build_crd, crd_yaml
from mimo_operator.api.flags import OWNED_FLAG_SOURCES, OWNED_FLAGS, owned_flag_pattern
from mimo_operator.planner import PlanError
from mimo_operator.render.planning import plan_for

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "mimodeployments.serving.mimo.dev.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

# Keys a structural schema node may carry (apiextensions.k8s.io/v1 JSONSchemaProps as we use them).
ALLOWED_KEYS = {
    "description",
    "type",
    "format",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "items",
    "properties",
    "additionalProperties",
    "required",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-validations",
}


def openapi_schema() -> dict[str, Any]:
    schema: dict[str, Any] = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its field path (`spec.context.maxModelLen`, `spec.serving.env[]`)."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def at(path: str) -> dict[str, Any]:
    node = openapi_schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def test_committed_crd_is_fresh() -> None:
    assert CRD_FILE.exists(), f"{CRD_FILE.relative_to(ROOT)} is missing: run `make crd`"
    assert CRD_FILE.read_text() == crd_yaml(), (
        f"{CRD_FILE.relative_to(ROOT)} is stale: the API models changed. Regenerate it with `make crd` "
        "and commit the result."
    )


@pytest.mark.parametrize("hash_seed", ["0", "4242"])
def test_make_crd_reproduces_the_committed_file_in_a_fresh_process(hash_seed: str) -> None:
    # What `make crd` runs (mk/crd.mk), in new interpreters with different string-hash seeds: a
    # generator that iterated a set or dict in hash order would write a different file on a
    # contributor's machine than the committed one, and the drift check would flap.
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    made = subprocess.run(
        [sys.executable, "-m", "mimo_operator.api.crd"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    ).stdout
    assert made == CRD_FILE.read_text(), f"`make crd` with PYTHONHASHSEED={hash_seed} differs"


def test_committed_crd_is_what_the_api_server_gets() -> None:
    # The committed YAML (not a fresh rendering) parses back to exactly the object the models build:
    # no value lost to YAML quoting (a pattern with `:` or `#`, a "1" that became 1).
    committed = yaml.safe_load(CRD_FILE.read_text())
    assert committed == build_crd()
    assert committed["metadata"]["name"] == "mimodeployments.serving.mimo.dev"


def test_schema_is_structural() -> None:
    problems = []
    for path, node in walk(openapi_schema()):
        where = path or "<root>"
        for key in set(node) - ALLOWED_KEYS - ({"default"} if path == "spec.replicas" else set()):
            problems.append(f"{where}: key {key!r} is not allowed ($ref, $defs, title, default, const...)")
        if "type" not in node and not node.get("x-kubernetes-int-or-string"):
            problems.append(f"{where}: no type")
        if node.get("x-kubernetes-int-or-string"):
            # The only anyOf the API server accepts beside int-or-string, compared exactly.
            if node.get("anyOf", [{"type": "integer"}, {"type": "string"}]) != [
                {"type": "integer"},
                {"type": "string"},
            ]:
                problems.append(f"{where}: int-or-string anyOf must be exactly [integer, string]")
        elif "anyOf" in node:
            problems.append(f"{where}: anyOf outside the int-or-string pattern")
        if node.get("additionalProperties") is False or (
            "additionalProperties" in node and "properties" in node
        ):
            problems.append(f"{where}: additionalProperties beside properties")
        for key in ("exclusiveMinimum", "exclusiveMaximum"):
            if key in node and not isinstance(node[key], bool):
                problems.append(f"{where}: {key} must be a boolean flag in OpenAPI v3.0")
        if node.get("type") == "object" and "properties" in node:
            missing = set(node.get("required", [])) - set(node["properties"])
            if missing:
                problems.append(f"{where}: required names unknown properties {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_every_spec_field_has_a_description() -> None:
    missing = [
        path
        for path, node in walk(at("spec"))
        if not path.endswith(("[]", "}")) and not node.get("description")
    ]
    assert not missing, f"spec fields without a description (add an attribute docstring): {missing}"


def test_only_replicas_has_a_default() -> None:
    # The API server must not write fields the user did not; the operator applies the pydantic
    # defaults. spec.replicas is the exception the scale subresource needs (see crd._spec_schema).
    defaulted = {path: node["default"] for path, node in walk(openapi_schema()) if "default" in node}
    assert defaulted == {"spec.replicas": 1}


def test_int_or_string_fields_keep_their_bounds() -> None:
    max_len = at("spec.context.maxModelLen")
    assert max_len["x-kubernetes-int-or-string"] is True
    assert (max_len["minimum"], max_len["maximum"], max_len["pattern"]) == (4096, 1048576, "^(auto)$")
    budget = at("spec.probes.startupBudgetSeconds")
    assert budget["x-kubernetes-int-or-string"] is True
    assert (budget["minimum"], budget["maximum"], budget["pattern"]) == (60, 86400, "^(auto)$")


def test_bounds_the_models_declare_are_in_the_schema() -> None:
    util = at("spec.gpuMemoryUtilization")
    assert (util["minimum"], util["exclusiveMinimum"], util["maximum"]) == (0.5, True, 0.98)
    assert "exclusiveMaximum" not in util
    assert at("spec.parallelism.tensor")["enum"] == [1, 2, 4, 8]
    assert at("spec.precision")["enum"] == ["bf16", "fp8", "int4"]
    extra = at("spec.serving.extraArgs")
    assert (extra["maxItems"], extra["items"]["maxLength"]) == (64, 1024)
    assert at("spec.replicas")["minimum"] == 0


def test_kubernetes_typed_objects_are_preserved_as_written() -> None:
    for path in ("spec.serving.env", "spec.placement.tolerations"):
        assert at(path)["items"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}, path
    assert at("spec.placement.affinity")["x-kubernetes-preserve-unknown-fields"] is True
    assert at("spec.placement.nodeSelector")["additionalProperties"] == {"type": "string"}


def test_crd_names_scope_and_versions() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == "mimodeployments.serving.mimo.dev"
    spec = crd["spec"]
    assert spec["group"] == "serving.mimo.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "MimoDeployment",
        "listKind": "MimoDeploymentList",
        "plural": "mimodeployments",
        "singular": "mimodeployment",
        "shortNames": ["mimo", "mimod"],
        "categories": ["all"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)


def test_subresources_and_printer_columns() -> None:
    [version] = build_crd()["spec"]["versions"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = {
        c["name"]: (c["type"], c["jsonPath"], c.get("priority", 0))
        for c in version["additionalPrinterColumns"]
    }
    assert columns == {
        "Phase": ("string", ".status.phase", 0),
        "Ready": ("string", ".status.ready", 0),
        "GPUs": ("integer", ".status.plan.gpusPerReplica", 0),
        "Max-Len": ("integer", ".status.plan.maxModelLen", 0),
        "Weights": ("string", ".status.weights.progress", 0),
        "Age": ("date", ".metadata.creationTimestamp", 0),
        "Plan": ("string", ".status.plan.summary", 1),
    }
    # Every column points at a field the status schema declares, with the same type.
    types = {"string": "string", "integer": "integer"}
    for name, (type_, path, _) in columns.items():
        if path.startswith(".status."):
            node = at(path.removeprefix("."))
            assert node["type"] == types[type_], name


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = at("status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def rules(path: str) -> list[dict[str, Any]]:
    node = openapi_schema() if path == "" else at(path)
    found: list[dict[str, Any]] = node.get("x-kubernetes-validations", [])
    return found


def test_cel_rules_name_their_fields() -> None:
    [auto] = rules("spec.autoscaling")
    assert (
        "spec.autoscaling.minReplicas" in auto["message"]
        and "spec.autoscaling.maxReplicas" in auto["message"]
    )
    [gpu] = rules("spec.gpu")
    assert "spec.gpu.memoryGiB" in gpu["message"]
    length, label = rules("")
    assert length["rule"] == f"size(self.metadata.name) <= {MAX_NAME_LENGTH}"
    assert label["rule"] == "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
    assert "metadata.name" in length["message"] and "metadata.name" in label["message"]
    for rule in rules("spec.serving.extraArgs"):
        assert rule["message"].startswith("spec.serving.extraArgs must not contain --")


def test_no_rule_forbids_replicas_beside_autoscaling() -> None:
    # The autoscaler writes spec.replicas through the scale subresource, which runs these rules.
    for path, node in walk(openapi_schema()):
        for rule in node.get("x-kubernetes-validations", []):
            assert "replicas" not in rule["rule"].replace("minReplicas", "").replace("maxReplicas", ""), path


def extra_args_regexes() -> list[re.Pattern[str]]:
    # RE2 and Python agree on this subset (anchors, groups, classes, alternation).
    patterns = [re.search(r"matches\('(.*)'\)\)$", r["rule"]) for r in rules("spec.serving.extraArgs")]
    return [re.compile(m.group(1)) for m in patterns if m]


@pytest.mark.parametrize("flag", OWNED_FLAGS)
def test_every_owned_flag_is_refused_in_extra_args(flag: str) -> None:
    regexes = extra_args_regexes()
    for arg in (flag, f"{flag}=1", f"{flag} 1", flag.replace("-", "_").replace("__", "--", 1)):
        assert any(r.search(arg) for r in regexes), arg


@pytest.mark.parametrize(
    "args",
    [
        ["--max-model", "1000"],  # argparse abbreviation, resolved by vLLM to --max-model-len
        ["--tensor_parallel=4"],
        ["--device-memory-utilization=0.5"],  # vLLM alias of --gpu-memory-utilization
        ["--disable-expert-parallel"],
        ["--no-enable-expert-parallel"],
        ["-ep"],
        ["-n2"],  # one-letter alias of --nnodes, value attached
        ["-dpl", "2"],
        ["-sc={}"],
    ],
)
def test_vllm_spellings_of_owned_flags_are_refused(args: list[str]) -> None:
    # Checked against vLLM 0.33.0's real parser when the rules were written: every form it accepts
    # that sets an owned setting (554 of them) matches a rule.
    regexes = extra_args_regexes()
    assert any(r.search(a) for a in args for r in regexes), args


@pytest.mark.parametrize(
    "arg",
    [
        "--max-num-seqs=64",
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "--tool-call-parser",
        "hermes",
        "--tokenizer-revision=abc",
        "--data-parallel-backend=mp",
        "--disable-hybrid-kv-cache-manager",
        "-pcp",
        "-dcp",
        "-dpb",
        "-q",
        "--portable",
        "--hostname",
    ],
)
def test_other_flags_pass_extra_args_rules(arg: str) -> None:
    # None of these is an owned setting (the vLLM ones were checked against all 485 of its options).
    assert not any(r.search(arg) for r in extra_args_regexes())


def test_owned_flag_sources_are_owned_flags() -> None:
    assert set(OWNED_FLAG_SOURCES) <= set(OWNED_FLAGS)
    assert re.search(owned_flag_pattern(["--tensor-parallel-size"]), "-tp")


def test_there_are_examples() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "mimo-fp8-h100.yaml",
        "mimo-fp8-h200.yaml",
        "mimo-bf16-h100-multinode.yaml",
        "mimo-infeasible.yaml",
        "mimo-autoscaling.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_parses(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("#"), f"{path.name} needs a comment header that explains it"
    body = yaml.safe_load(text)
    assert "namespace" not in body["metadata"], (
        "examples are applied into the reader's (or a test's) namespace"
    )
    parse_mimo_deployment(body)


# What each example's header comment promises: (GPUs per replica, nodes per replica, TP, PP) or a reason.
PLANNED: dict[str, tuple[int, int, int, int] | str] = {
    "mimo-fp8-h100.yaml": (8, 1, 8, 1),
    "mimo-fp8-h200.yaml": (4, 1, 4, 1),
    "mimo-bf16-h100-multinode.yaml": (16, 2, 8, 2),
    "mimo-bf16-h100-wide-ep.yaml": (16, 2, 4, 1),  # and so DP4, two ranks per node
    "mimo-infeasible.yaml": "NeedsMoreThanOneNode",
    "mimo-autoscaling.yaml": (8, 1, 8, 1),
    "mimo-fp8-mi300x.yaml": (4, 1, 4, 1),
}


@pytest.mark.parametrize("name", sorted(PLANNED))
def test_example_plans_as_its_comment_says(name: str) -> None:
    deployment = parse_mimo_deployment(yaml.safe_load((ROOT / "examples" / name).read_text()))
    result = plan_for(deployment.spec)
    expected = PLANNED[name]
    if isinstance(expected, str):
        assert isinstance(result, PlanError)
        assert result.reason == expected
    else:
        assert not isinstance(result, PlanError), result
        got = (
            result.gpus_per_replica,
            result.nodes_per_replica,
            result.tensor_parallel,
            result.pipeline_parallel,
        )
        assert got == expected
