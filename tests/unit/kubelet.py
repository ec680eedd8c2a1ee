"""What a container of a rendered StatefulSet would exec, worked out the way Kubernetes does it.

Why this exists: a multi-node vLLM group runs one pod template for every rank; which `vllm serve`
line each rank runs is decided at run time by the StatefulSet controller (the pod-index label),
the kubelet (env from fieldRefs, `$(VAR)` expansion in command and args) and `/bin/sh` (the group
entrypoint). A test that re-implements those steps on the rendered args checks itself, not the
renderer. Here each step is the real one or a faithful copy of Kubernetes' rule:

- pods: the StatefulSet controller names pod i `<sts>-<i>` and labels it
  `apps.kubernetes.io/pod-index=<i>` (KEP-4017, on by default since Kubernetes 1.28);
- env: `value` (itself expanded against the variables above it), and `valueFrom.fieldRef` /
  `secretKeyRef` resolved from that pod; an env source this module does not know raises;
- `$(VAR)` in command and args: the kubelet's expansion (k8s.io/kubernetes
  third_party/forked/golang/expansion/expand.go): `$$` is a literal `$`, `$(NAME)` of a defined
  variable is its value, an undefined `$(NAME)` stays as written;
- the expanded command then really runs, under `/bin/sh` when the command says so, with only the
  container's environment and a PATH whose `vllm` is a shim that prints its argv as JSON.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"  # set by the StatefulSet controller (KEP-4017)
POD_IP = "10.244.1.7"  # any address: the pod is never started
_LABEL_PATH = re.compile(r"^metadata\.labels\['([^']+)'\]$")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion, rule for rule as expand.go's Expand/tryReadVariableName."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":  # escaped operator
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close == -1:  # incomplete reference: kept as written
                    out.append("$(")
                    advance = 1
                else:
                    name = rest[1:close]
                    out.append(env.get(name, f"$({name})"))
                    advance = close + 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def statefulset_pods(sts: dict[str, Any]) -> list[dict[str, Any]]:
    """The pods the StatefulSet controller makes from the template: name and pod-index label."""
    pods = []
    for ordinal in range(sts["spec"]["replicas"]):
        pod = copy.deepcopy(sts["spec"]["template"])
        name = f"{sts['metadata']['name']}-{ordinal}"
        pod["metadata"] = {
            **pod["metadata"],
            "name": name,
            "namespace": sts["metadata"]["namespace"],
            "labels": {
                **pod["metadata"]["labels"],
                POD_INDEX_LABEL: str(ordinal),
                "statefulset.kubernetes.io/pod-name": name,
            },
        }
        pod["status"] = {"podIP": POD_IP}
        pods.append(pod)
    return pods


def _field(pod: dict[str, Any], path: str) -> str:
    labelled = _LABEL_PATH.match(path)
    if labelled:
        return str(pod["metadata"]["labels"][labelled.group(1)])  # KeyError: no such label on the pod
    values = {
        "metadata.name": pod["metadata"]["name"],
        "metadata.namespace": pod["metadata"]["namespace"],
        "status.podIP": pod["status"]["podIP"],
    }
    return str(values[path])


def container_env(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it (Secrets read as `<secret>/<key>`)."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
            continue
        source = item["valueFrom"]
        if "fieldRef" in source:
            env[item["name"]] = _field(pod, source["fieldRef"]["fieldPath"])
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = f"{ref['name']}/{ref['key']}"
        else:
            raise ValueError(f"env {item['name']}: source {sorted(source)} not modelled here")
    return env


def _shim(bin_dir: Path) -> None:
    shim = bin_dir / "vllm"
    if not shim.exists():
        shim.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
        shim.chmod(0o755)


def exec_argv(pod: dict[str, Any], bin_dir: Path) -> list[str]:
    """Run the pod's first container's command and return the argv its `vllm` got (after `vllm`)."""
    container = pod["spec"]["containers"][0]
    env = container_env(pod, container)
    argv = [expand(word, env) for word in [*container["command"], *container.get("args", [])]]
    _shim(bin_dir)
    proc = subprocess.run(
        argv,
        env={**env, "PATH": f"{bin_dir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise AssertionError(f"{argv[:4]}... exited {proc.returncode} without exec'ing vllm: {proc.stderr}")
    words: list[str] = json.loads(proc.stdout)
    return words
