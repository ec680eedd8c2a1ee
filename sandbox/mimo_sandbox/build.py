"""Build the sandbox's binaries from the Go module proxy, once, and cache them by version.

Nothing is downloaded as a release tarball and nothing is committed: every binary is compiled with the
machine's `go` from the module proxy, at the versions pinned in `versions.py`, into
`$MIMO_CACHE_DIR/bin/<name>-<version>/<name>` (default `~/.cache/mimo-operator`). A second call finds
them and builds nothing.

Two of the upstream modules cannot simply be `go install`ed because their go.mod files carry `replace`
directives pointing at local directories (Kubernetes' staging repos, etcd's sibling modules). For those
we generate a tiny wrapper module that requires the upstream module and replaces each local path with
the published module at the matching version; the wrapper lives in the cache, never in git.

Progress goes to stderr on purpose: a cold build takes 10-20 minutes and a silent build looks hung.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from mimo_sandbox import versions

_LOG_TAIL_LINES = 40


class BuildError(RuntimeError):
    """A sandbox binary could not be built; the message says which one and why."""


@dataclass(frozen=True)
class BinPaths:
    """Absolute paths of every binary the sandbox (and the Helm-based tests) need."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    helm: Path
    bin_dir: Path  # one directory with a symlink per binary, handy for PATH

    def all(self) -> dict[str, Path]:
        return {
            "etcd": self.etcd,
            "kube-apiserver": self.kube_apiserver,
            "kube-controller-manager": self.kube_controller_manager,
            "kube-scheduler": self.kube_scheduler,
            "kubectl": self.kubectl,
            "kwok": self.kwok,
            "helm": self.helm,
        }


def cache_dir() -> Path:
    """Root of everything the sandbox caches; `MIMO_CACHE_DIR` overrides it (CI, shared machines)."""
    override = os.environ.get("MIMO_CACHE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "mimo-operator").resolve()


def binary_path(name: str, version: str) -> Path:
    return cache_dir() / "bin" / f"{name}-{version}" / name


def expected_binaries() -> dict[str, Path]:
    """Where each binary lives once built, without building anything."""
    k8s = versions.KUBERNETES_VERSION
    return {
        "etcd": binary_path("etcd", versions.ETCD_VERSION),
        "kube-apiserver": binary_path("kube-apiserver", k8s),
        "kube-controller-manager": binary_path("kube-controller-manager", k8s),
        "kube-scheduler": binary_path("kube-scheduler", k8s),
        "kubectl": binary_path("kubectl", k8s),
        "kwok": binary_path("kwok", versions.KWOK_VERSION),
        "helm": binary_path("helm", versions.HELM_VERSION),
    }


def _bin_dir_name() -> str:
    return (
        f"sandbox-k8s{versions.KUBERNETES_VERSION}-etcd{versions.ETCD_VERSION}"
        f"-kwok{versions.KWOK_VERSION}-helm{versions.HELM_VERSION}"
    )


def ensure_binaries(*, progress: TextIO | None = None) -> BinPaths:
    """Return the paths of all sandbox binaries, building the missing ones first.

    `progress` receives human-readable build progress (stderr when None). When everything is cached
    this does no Go work at all, so it is cheap to call at every sandbox start.
    """
    out = progress if progress is not None else sys.stderr
    paths = expected_binaries()
    if not all(p.is_file() for p in paths.values()):
        # A lock, because two pytest sessions (or `make -j`) starting at once would otherwise both
        # spend 15 minutes compiling the same thing into the same place.
        with build_lock():
            _Builder(out).build_missing(paths)
    bin_dir = _link_dir(paths)
    return BinPaths(
        etcd=paths["etcd"],
        kube_apiserver=paths["kube-apiserver"],
        kube_controller_manager=paths["kube-controller-manager"],
        kube_scheduler=paths["kube-scheduler"],
        kubectl=paths["kubectl"],
        kwok=paths["kwok"],
        helm=paths["helm"],
        bin_dir=bin_dir,
    )


def kwok_module_dir() -> Path:
    """kwok's source tree in the Go module cache; its `kustomize/stage` holds the Stage definitions."""
    if shutil.which("go") is None:
        # Binaries are cached but go is gone (e.g. a runtime-only image): the module cache may remain.
        gopath = os.environ.get("GOPATH", str(Path.home() / "go")).split(os.pathsep)[0]
        modcache = Path(os.environ.get("GOMODCACHE") or Path(gopath) / "pkg" / "mod")
        candidate = modcache / "sigs.k8s.io" / f"kwok@{versions.KWOK_VERSION}"
        if candidate.is_dir():
            return candidate
    info = go_mod_download(f"sigs.k8s.io/kwok@{versions.KWOK_VERSION}", env=go_env(), log=None)
    return Path(info["Dir"])


def _link_dir(paths: Mapping[str, Path]) -> Path:
    link_dir = cache_dir() / "bin" / _bin_dir_name()
    link_dir.mkdir(parents=True, exist_ok=True)
    for name, target in paths.items():
        link = link_dir / name
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        tmp = link_dir / f".{name}.{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    return link_dir


@contextmanager
def build_lock(name: str = "build") -> Iterator[None]:
    """An exclusive lock on `<cache>/<name>.lock`: compiles share "build" so two never compete for CPU."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "`go` was not found on PATH. The sandbox compiles etcd, Kubernetes, kwok and helm from the "
            "Go module proxy on first use; install Go >= 1.25 (https://go.dev/dl/) and retry."
        )
    return go


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Static binaries: no C toolchain needed, and they run anywhere on this machine.
    env["CGO_ENABLED"] = "0"
    # -trimpath keeps the local cache paths out of the binaries (and their build IDs stable);
    # -mod=mod lets `go build` fill in go.sum lines the wrapper modules have not recorded yet.
    flags = env.get("GOFLAGS", "").split()
    for flag in ("-trimpath", "-mod=mod"):
        if flag not in flags:
            flags.append(flag)
    env["GOFLAGS"] = " ".join(flags)
    # A go.work somewhere above the cache must not leak into the wrapper modules.
    env["GOWORK"] = "off"
    return env


def _run_go(args: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path | None, what: str) -> str:
    cmd = [_go_binary(), *args]
    proc = subprocess.run(
        cmd, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if log is not None:
        with log.open("a") as fh:
            fh.write(f"$ {' '.join(cmd)}  (in {cwd})\n{proc.stdout}\n")
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-_LOG_TAIL_LINES:])
        hint = ""
        if re.search(r"\b(404|410|403)\b|not found|unknown revision|invalid version", proc.stdout):
            proxy = env.get("GOPROXY") or "the default module proxy"
            hint = f"\nThe module proxy ({proxy}) refused or does not serve a module needed for {what}."
        raise BuildError(
            f"building {what} failed: `{' '.join(cmd)}` exited with {proc.returncode}{hint}\n"
            f"--- last lines of go's output{f' (full log: {log})' if log else ''} ---\n{tail}"
        )
    return proc.stdout


def go_mod_download(module_at_version: str, *, env: Mapping[str, str], log: Path | None) -> dict[str, str]:
    # Outside any module, so the command cannot be confused by a go.mod in the current directory.
    scratch = cache_dir() / "src"
    scratch.mkdir(parents=True, exist_ok=True)
    out = _run_go(
        ["mod", "download", "-json", module_at_version],
        cwd=scratch,
        env=env,
        log=log,
        what=module_at_version,
    )
    info: dict[str, str] = json.loads(out[out.index("{") :])
    if info.get("Error"):
        raise BuildError(f"the module proxy refused {module_at_version}: {info['Error']}")
    return info


_LOCAL_REPLACE = re.compile(r"^\s*(?:replace\s+)?(\S+)\s*=>\s*(\.\.?/\S*)\s*$")


def local_replacements(go_mod_text: str) -> list[str]:
    """Module paths a go.mod replaces with local directories (the reason it cannot be `go install`ed).

    `FORBIDDEN_DEPENDENCY` placeholders (etcd uses them to ban modules) are not real modules and are
    left out.
    """
    found = []
    for line in go_mod_text.splitlines():
        m = _LOCAL_REPLACE.match(line.split("//", 1)[0])
        if m and "FORBIDDEN" not in m.group(2):
            found.append(m.group(1))
    return found


def _go_directive(go_mod_text: str) -> str:
    m = re.search(r"^go\s+(\S+)\s*$", go_mod_text, re.MULTILINE)
    return m.group(1) if m else "1.25"


@dataclass(frozen=True)
class _Wrapped:
    """A module that needs a wrapper: which module, its version, and how to version its replacements."""

    name: str
    module: str
    version: str
    replacement_version: str  # version of each module that upstream replaces with a local path
    binaries: Mapping[str, str]  # binary name -> main package path
    ldflags: str


class _Builder:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._env = go_env()

    def _say(self, msg: str) -> None:
        self._out.write(f"[mimo-operator sandbox] {msg}\n")
        self._out.flush()

    def build_missing(self, paths: Mapping[str, Path]) -> None:
        missing = [name for name, p in paths.items() if not p.is_file()]
        if not missing:
            return
        go = _go_binary()
        go_version = subprocess.run(
            [go, "version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        self._say(
            f"building {', '.join(missing)} from the Go module proxy with {go_version} "
            f"into {cache_dir() / 'bin'} (first use only; a cold build takes 10-20 minutes on 2 cores)"
        )
        started = time.monotonic()
        k8s = versions.KUBERNETES_VERSION
        minor = k8s.removeprefix("v").split(".")[1]
        kubernetes = _Wrapped(
            name="kubernetes",
            module="k8s.io/kubernetes",
            version=k8s,
            replacement_version=versions.kubernetes_staging_version(k8s),
            binaries={
                "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
                "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
                "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
                "kubectl": "k8s.io/kubernetes/cmd/kubectl",
            },
            # Without a real gitVersion the components report v0.0.0-master and kube-apiserver derives a
            # nonsense emulation/compatibility version from it.
            ldflags=" ".join(
                f"-X {pkg}.{var}={val}"
                for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
                for var, val in (
                    ("gitVersion", k8s),
                    ("gitMajor", "1"),
                    ("gitMinor", minor),
                    ("gitTreeState", "clean"),
                )
            ),
        )
        etcd = _Wrapped(
            name="etcd",
            module="go.etcd.io/etcd/server/v3",
            version=versions.ETCD_VERSION,
            replacement_version=versions.ETCD_VERSION,
            binaries={"etcd": "go.etcd.io/etcd/server/v3"},
            ldflags="",
        )
        # Cheapest first, so a broken toolchain or proxy shows up in seconds rather than after kubernetes.
        if "etcd" in missing:
            self._build_wrapped(etcd, paths)
        if "kwok" in missing:
            self._go_install(
                "kwok", f"sigs.k8s.io/kwok/cmd/kwok@{versions.KWOK_VERSION}", paths["kwok"], ldflags=""
            )
        if any(name in missing for name in kubernetes.binaries):
            self._build_wrapped(kubernetes, paths)
        if "helm" in missing:
            self._go_install(
                "helm",
                f"helm.sh/helm/v3/cmd/helm@{versions.HELM_VERSION}",
                paths["helm"],
                ldflags=f"-X helm.sh/helm/v3/internal/version.version={versions.HELM_VERSION}",
            )
        self._say(f"all sandbox binaries built in {time.monotonic() - started:.0f}s")

    def _install(self, built: Path, final: Path) -> None:
        # Rename into place, so an interrupted build never leaves a half-written binary that a later
        # run would take for a finished one.
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(built, final)

    def _go_install(self, name: str, target: str, final: Path, *, ldflags: str) -> None:
        self._say(f"go install {target} ...")
        t0 = time.monotonic()
        work = cache_dir() / "src" / f"{name}-install"
        work.mkdir(parents=True, exist_ok=True)
        gobin = work / "gobin"
        shutil.rmtree(gobin, ignore_errors=True)
        gobin.mkdir()
        env = dict(self._env)
        env["GOBIN"] = str(gobin)
        # `go install pkg@version` refuses -mod=mod: it always runs in its own module.
        env["GOFLAGS"] = " ".join(f for f in env["GOFLAGS"].split() if not f.startswith("-mod="))
        log = work / "build.log"
        log.write_text("")
        args = ["install", "-ldflags", f"-s -w {ldflags}".strip(), target]
        _run_go(args, cwd=work, env=env, log=log, what=name)
        self._install(gobin / name, final)
        self._say(f"  {name} ready in {time.monotonic() - t0:.0f}s: {final}")

    def _build_wrapped(self, spec: _Wrapped, paths: Mapping[str, Path]) -> None:
        work = cache_dir() / "src" / f"{spec.name}-{spec.version}"
        work.mkdir(parents=True, exist_ok=True)
        log = work / "build.log"
        log.write_text("")
        self._say(f"reading {spec.module}@{spec.version}'s go.mod for its local replace directives ...")
        info = go_mod_download(f"{spec.module}@{spec.version}", env=self._env, log=log)
        upstream_mod = Path(info["GoMod"]).read_text()
        replaced = local_replacements(upstream_mod)
        if not replaced:
            raise BuildError(f"expected local replace directives in {spec.module}@{spec.version}'s go.mod")
        self._write_wrapper(work, spec, upstream_mod, replaced)
        self._say(
            f"wrapper module for {spec.module}@{spec.version} in {work}: "
            f"{len(replaced)} replaced modules pinned to {spec.replacement_version}"
        )
        _run_go(
            ["get", *(f"{pkg}@{spec.version}" for pkg in spec.binaries.values())],
            cwd=work,
            env=self._env,
            log=log,
            what=f"{spec.name} dependencies",
        )
        for name, pkg in spec.binaries.items():
            if paths[name].is_file():
                continue
            self._say(f"go build {pkg} ({spec.version}) ...")
            t0 = time.monotonic()
            out_dir = work / "out"
            out_dir.mkdir(exist_ok=True)
            built = out_dir / name
            built.unlink(missing_ok=True)
            args = ["build", "-o", str(built), "-ldflags", f"-s -w {spec.ldflags}".strip(), pkg]
            _run_go(args, cwd=work, env=self._env, log=log, what=name)
            self._install(built, paths[name])
            self._say(f"  {name} ready in {time.monotonic() - t0:.0f}s: {paths[name]}")

    def _write_wrapper(self, work: Path, spec: _Wrapped, upstream_mod: str, replaced: Sequence[str]) -> None:
        lines = [
            "// Generated by mimo_sandbox.build: a wrapper so the upstream module's local",
            "// replace directives can be satisfied from the module proxy. Not committed anywhere.",
            f"module mimo-operator.local/sandbox/{spec.name}",
            "",
            f"go {_go_directive(upstream_mod)}",
            "",
            f"require {spec.module} {spec.version}",
            "",
            "replace (",
            *(f"\t{mod} => {mod} {spec.replacement_version}" for mod in replaced),
            ")",
            "",
        ]
        text = "\n".join(lines)
        go_mod = work / "go.mod"
        if not go_mod.exists() or go_mod.read_text() != text:
            go_mod.write_text(text)
            (work / "go.sum").unlink(missing_ok=True)


def go_install(
    name: str, target: str, final: Path, *, ldflags: str = "", progress: TextIO | None = None
) -> None:
    """`go install target` into `final` (an extra tool such as promtool), under the build lock."""
    with build_lock():
        if not final.is_file():
            _Builder(progress if progress is not None else sys.stderr)._go_install(
                name, target, final, ldflags=ldflags
            )


def main() -> int:
    """`python -m mimo_sandbox.build`: what `make sandbox-bins` runs."""
    try:
        paths = ensure_binaries()
    except BuildError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    for name, path in paths.all().items():
        sys.stdout.write(f"{name}\t{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
