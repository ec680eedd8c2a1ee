"""Run generated `vllm serve` command lines through the real vLLM 0.33.0 argument parser.

Why this exists: vLLM renames and removes flags between releases, and the operator only ever
emits command lines for GPU pods we cannot start in tests. Rather than keep a hand-written list of
"valid flags" that drifts, the tests ask vLLM itself. vLLM cannot live in the project venv (it
pins torch and ~160 other packages, several GB), so it gets its own venv in a cache outside git,
built once from an exact lock file (requirements-vllm-0.33.0.txt, which explains what was left out
and why), and argcheck.py runs inside it as a subprocess.

    from tests.vllm_cli.harness import parse_serve_args
    [res] = parse_serve_args([["XiaomiMiMo/MiMo-V2-Flash", "--tensor-parallel-size", "8"]])
    assert res.ok and res.parsed["tensor_parallel_size"] == 8

`python -m tests.vllm_cli.harness` prepares the venv (used by `make vllm-venv`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

VLLM_VERSION = "0.33.0"
HERE = Path(__file__).resolve().parent
LOCK_FILE = HERE / f"requirements-vllm-{VLLM_VERSION}.txt"
ARGCHECK = HERE / "argcheck.py"
# Bumped when the install recipe itself changes, so old venvs are rebuilt rather than trusted.
_RECIPE = "1"
# Writing this file is the last install step: a venv without it (crash, Ctrl-C) is rebuilt.
_MARKER = ".mimo-vllm-installed"


class VllmVenvError(RuntimeError):
    """The cached vLLM venv could not be built or did not answer as expected."""


@dataclasses.dataclass(frozen=True)
class ServeParse:
    """What `vllm serve` made of one command line (see argcheck.py for what "ok" covers)."""

    ok: bool
    error: str | None
    # argparse dest -> parsed value (JSON-converted: enums as values, dataclasses as dicts).
    # Present whenever argparse succeeded, even if a later check failed.
    parsed: Mapping[str, Any]
    # dests of deprecated flags that were used (vLLM only logs a warning for these).
    deprecated: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ParserRegistry:
    """Names vLLM accepts for --tool-call-parser and --reasoning-parser (built-ins only)."""

    tool_call_parsers: frozenset[str]
    reasoning_parsers: frozenset[str]


def cache_root() -> Path:
    """`$MIMO_CACHE_DIR`, else ~/.cache/mimo-operator: outside git, shared by every checkout."""
    env = os.environ.get("MIMO_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mimo-operator"


def venv_dir() -> Path:
    return cache_root() / f"vllm-{VLLM_VERSION}" / "venv"


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def _fingerprint() -> str:
    h = hashlib.sha256()
    h.update(_RECIPE.encode())
    # Only the pins count: editing the lock file's comments must not trigger a 4 GB reinstall.
    for line in LOCK_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            h.update(line.strip().encode() + b"\n")
    h.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return h.hexdigest()


def _is_ready() -> bool:
    marker = venv_dir() / _MARKER
    try:
        return marker.read_text().strip() == _fingerprint() and venv_python().exists()
    except OSError:
        return False


def _say(msg: str) -> None:
    print(f"[vllm-venv] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """Serialise installs across processes (parallel pytest runs, make -j)."""
    path = venv_dir().parent / "install.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(f"another process is installing vLLM {VLLM_VERSION}; waiting for {path}")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_streamed(cmd: Sequence[str], what: str) -> None:
    """Run cmd, echoing its output to stderr as progress, keeping the tail for the error."""
    tail: collections.deque[str] = collections.deque(maxlen=40)
    with subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_child_env()
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            print(f"  {line}", end="", file=sys.stderr, flush=True)
        rc = proc.wait()
    if rc != 0:
        raise VllmVenvError(
            f"{what} failed (exit {rc}): {' '.join(cmd)}\n"
            "If PyPI refused a download or is unreachable, the vLLM parser tests cannot run "
            "on this machine; the partial venv is not marked ready, so the next run starts over.\n"
            "Last output:\n" + "\n".join(tail)
        )


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The vLLM venv must see only its own site-packages, never the project's.
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"):
        env.pop(key, None)
    env.setdefault("VLLM_TARGET_DEVICE", "cpu")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _install() -> None:
    venv = venv_dir()
    if venv.exists():
        _say(f"removing incomplete or outdated {venv}")
        shutil.rmtree(venv)
    started = time.monotonic()
    _say(f"creating {venv} (one-off: downloads ~4 GB from PyPI, a few minutes)")
    _run_streamed([sys.executable, "-m", "venv", str(venv)], "creating the venv")
    # --no-deps: the lock file is the complete, already-resolved set (it deliberately omits
    # triton and vLLM's GPU-kernel packages, which a resolver would pull back in).
    # --only-binary: every pin has a wheel; building an sdist here would mean the lock is wrong.
    # --no-cache-dir: the venv is the cache; a second multi-GB copy in ~/.cache/pip helps nobody.
    _run_streamed(
        [
            str(venv_python()), "-m", "pip", "install",
            "--no-deps", "--only-binary", ":all:", "--no-cache-dir", "--progress-bar", "off",
            "-r", str(LOCK_FILE),
        ],
        f"installing vLLM {VLLM_VERSION} from {LOCK_FILE.name}",
    )  # fmt: skip
    _say("checking that the vLLM serve parser builds")
    [res] = _call_argcheck([["smoke-test/model", "--tensor-parallel-size", "2"]])
    if not (res.ok and res.parsed.get("tensor_parallel_size") == 2):
        raise VllmVenvError(f"vLLM venv built but its parser misbehaves: {res}")
    (venv / _MARKER).write_text(_fingerprint() + "\n")
    _say(f"ready in {time.monotonic() - started:.0f}s: {venv}")


def ensure_vllm_venv() -> Path:
    """Return the cached venv's directory, building it first if needed (idempotent, locked)."""
    if _is_ready():
        return venv_dir()
    if sys.platform != "linux" or platform.machine() != "x86_64":
        raise VllmVenvError(
            f"the vLLM {VLLM_VERSION} lock file pins linux x86_64 wheels; "
            f"this is {sys.platform}/{platform.machine()}"
        )
    with _install_lock():
        if not _is_ready():  # another process may have finished while we waited
            _install()
    return venv_dir()


def _run_argcheck(args: Sequence[str], stdin: str) -> Any:
    proc = subprocess.run(
        [str(venv_python()), str(ARGCHECK), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_child_env(),
        timeout=600,
        check=False,
    )
    if proc.returncode != 0:
        raise VllmVenvError(f"argcheck.py exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise VllmVenvError(f"argcheck.py printed no JSON ({exc}):\n{proc.stdout[-2000:]}") from exc


def _call_argcheck(argvs: Sequence[Sequence[str]]) -> list[ServeParse]:
    raw = _run_argcheck([], json.dumps([list(a) for a in argvs]))
    if not isinstance(raw, list) or len(raw) != len(argvs):
        raise VllmVenvError(f"argcheck.py answered {len(raw)} results for {len(argvs)} command lines")
    return [
        ServeParse(
            ok=bool(r["ok"]),
            error=r["error"],
            parsed=MappingProxyType(dict(r["parsed"] or {})),
            deprecated=tuple(r.get("deprecated", ())),
        )
        for r in raw
    ]


def parse_serve_args(argvs: list[list[str]]) -> list[ServeParse]:
    """Parse each argv (the words after `vllm serve`, model first) with vLLM's own parser.

    One subprocess for the whole batch: importing vLLM costs several seconds, parsing is cheap.
    """
    if not argvs:
        return []
    ensure_vllm_venv()
    return _call_argcheck(argvs)


@functools.cache
def registered_parsers() -> ParserRegistry:
    """The built-in tool-call and reasoning parser names of the pinned vLLM."""
    ensure_vllm_venv()
    raw = _run_argcheck(["--registries"], "")
    return ParserRegistry(
        tool_call_parsers=frozenset(raw["tool_call_parsers"]),
        reasoning_parsers=frozenset(raw["reasoning_parsers"]),
    )


def vllm_source_dir() -> Path:
    """The installed `vllm` package, for facts only readable from source (e.g. envs.py)."""
    found = sorted(venv_dir().glob("lib/python3*/site-packages/vllm"))
    if not found:
        raise VllmVenvError(f"no vllm package under {venv_dir()}")
    return found[0]


def main() -> int:
    try:
        path = ensure_vllm_venv()
    except VllmVenvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
