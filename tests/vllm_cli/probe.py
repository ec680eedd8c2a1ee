"""Run one of the vLLM-side scripts (attention_check.py, kv_allocator.py) in the cached vLLM venv.

Why this exists: those scripts import vLLM 0.33.0 itself, which lives only in the venv harness.py
builds (torch and ~160 pinned packages, outside the project venv). Each call is one subprocess
with a JSON list in and a JSON list out, so a test batches its cases: importing vLLM costs seconds.

    from tests.vllm_cli.probe import run_vllm_script
    [result] = run_vllm_script("kv_allocator.py", [case])
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.vllm_cli.harness import HERE, VllmVenvError, _child_env, ensure_vllm_venv, venv_python


def run_vllm_script(script: str, cases: list[dict[str, Any]], timeout: float = 900) -> list[Any]:
    """Feed `cases` to tests/vllm_cli/<script> under the vLLM venv; return its JSON answer."""
    ensure_vllm_venv()
    proc = subprocess.run(
        [str(venv_python()), str(HERE / script)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise VllmVenvError(f"{script} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    try:
        answer = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise VllmVenvError(f"{script} printed no JSON ({exc}):\n{proc.stdout[-2000:]}") from exc
    if not isinstance(answer, list) or len(answer) != len(cases):
        raise VllmVenvError(f"{script} answered {answer!r} for {len(cases)} cases")
    return answer
