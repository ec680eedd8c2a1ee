"""Run a real Kubernetes control plane on 127.0.0.1, with kwok pretending to be the GPU nodes.

Start order matters and each step waits for the previous one to be healthy: etcd -> kube-apiserver ->
kube-controller-manager -> kube-scheduler -> kwok -> Node objects -> nodes Ready and untainted. Every
component runs in its own process group with its log in the state directory, so teardown can kill the
whole group and a startup failure can show the component's own words.

Teardown is guaranteed three ways, because a leaked etcd or apiserver would poison the next run:
`stop()` (also via the context manager and the pytest fixture), an atexit hook, and a SIGTERM/SIGHUP
handler; in the foreground the children also get PR_SET_PDEATHSIG so they die with a SIGKILLed parent.
Processes a user of the sandbox starts against it (the demo's operator) go through `spawn()` and are
ended the same ways, first. The signal handler chains: after teardown it calls the handler that was
installed before it (so the program's own cleanup runs), and only re-raises the signal if there was none.
With `background=True` (what `mimo-operator sandbox up` uses) none of that is armed after a successful
start: the processes outlive the caller and `Sandbox.attach(state_dir).stop()` ends them later.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import yaml

from mimo_sandbox import build
from mimo_sandbox import pools as node_pools
from mimo_sandbox.certs import ClientIdentity, Pki, generate_pki

log = logging.getLogger(__name__)

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

SERVICE_CIDR = "10.0.0.0/16"  # room for thousands of deployments' Services (make bench)
SERVICE_IP = "10.0.0.1"  # first address of SERVICE_CIDR: the `kubernetes` Service
POD_CIDR = "10.244.0.0/16"  # kwok hands out pod IPs from here
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

# kwok Stages, read from kwok's own module directory so they always match the kwok binary's version.
# "fast" pod stages make a scheduled pod Running and Ready immediately; heartbeat-with-lease keeps
# nodes Ready through Leases (kwok renews them) instead of rewriting every node's status.
KWOK_STAGE_FILES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)

_STATE_FILE = "state.json"
# Everything a sandbox writes into its state directory; stop() removes exactly these, so pointing
# state_dir at an existing directory never deletes anything else.
_OWNER_FILE = "owner.pid"
_OWNED_ENTRIES = ("etcd-data", "pki", "logs", "kubeconfigs", "run", "kubeconfig", _STATE_FILE, _OWNER_FILE)
_TEMP_PREFIX = "mimo-sandbox-"
_LOG_TAIL_LINES = 30
_STOP_GRACE_SECONDS = 10.0


class SandboxError(RuntimeError):
    """The sandbox could not start (the message names the component and shows its log) or is misused."""


@dataclass
class ComponentStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    detail: str
    log: Path | None


@dataclass
class _Component:
    name: str
    pid: int
    log: Path
    health_url: str
    popen: subprocess.Popen[bytes] | None = None  # None when attached from another process
    argv: tuple[str, ...] = ()  # kept so restart_component() can start it again the same way


def _free_port() -> int:
    # The kernel picks an unused port; the tiny window before the component binds it is acceptable
    # for a local sandbox, and a collision shows up as a clear startup failure with the log.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG = 1: if the Python process is SIGKILLed no atexit hook runs; this makes the
    # kernel send the component SIGTERM instead of leaving it orphaned.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)


def _kubeconfig(server: str, ca: Path, cert: Path, key: Path, user: str) -> dict[str, Any]:
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    # Credentials are embedded rather than referenced so the file works from any working directory
    # and for every client (kubectl, the Python client, helm, kopf).
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "sandbox", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}
        ],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": user}}],
        "current-context": "sandbox",
    }


class Sandbox:
    """A running (or startable) sandbox control plane.

    >>> with Sandbox() as sb:                         # doctest: +SKIP
    ...     sb.kubectl("get", "nodes")

    `pools`: a list of NodePool, a path to a pools YAML file, or None for the packaged default.
    `state_dir`: where pids, logs, PKI, etcd data and the kubeconfig live; None means a fresh temporary
    directory (removed by stop()).
    `audit_policy`: an audit Policy file; kube-apiserver then writes the events it selects as JSON
    lines to `audit_log` (`make bench` counts every request a client sent this way).
    """

    def __init__(
        self,
        pools: Sequence[node_pools.NodePool] | Path | str | None = None,
        state_dir: Path | str | None = None,
        *,
        bins: build.BinPaths | None = None,
        startup_timeout: float = 180.0,
        background: bool = False,
        audit_policy: Path | None = None,
    ) -> None:
        if pools is None or isinstance(pools, str | Path):
            self.pools = node_pools.load_pools(None if pools is None else Path(pools))
        else:
            self.pools = list(pools)
        self._temp_state = state_dir is None
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._bins = bins
        self.startup_timeout = startup_timeout
        self.background = background
        self.audit_policy = audit_policy
        self.server = ""
        self.startup_seconds: float | None = None
        self._components: dict[str, _Component] = {}
        self._guests: dict[str, _Component] = {}  # processes spawn() started for the sandbox's user
        self._stopped = True
        self._armed = False
        self._previous_handlers: dict[int, Any] = {}
        # Re-entrant: a SIGTERM arriving while stop() runs calls stop() again from the handler.
        self._lock = threading.RLock()
        self._deadline = 0.0

    # ---- paths -----------------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.state_dir is None:
            raise SandboxError("the sandbox has no state directory yet; call start() first")
        return self.state_dir

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (user `admin`, group system:masters)."""
        return self._dir() / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        """kube-apiserver's audit events, one JSON object a line (only with `audit_policy`)."""
        return self._dir() / "logs" / "kube-apiserver-audit.log"

    @property
    def bin_dir(self) -> Path:
        """Directory with etcd, kube-*, kubectl, kwok and helm (put it on PATH for subprocesses)."""
        return self.bins.bin_dir

    @property
    def bins(self) -> build.BinPaths:
        if self._bins is None:
            self._bins = build.ensure_binaries()
        return self._bins

    @property
    def node_names(self) -> list[str]:
        return [name for pool in self.pools for name in pool.node_names()]

    # ---- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Sandbox:
        """Start every component and wait until the nodes are Ready; on any failure, clean up and raise."""
        if not self._stopped:
            return self
        t0 = time.monotonic()
        bins = self.bins  # may build (slow, once) before any process exists
        stage_dir = build.kwok_module_dir()
        if self.state_dir is None:
            _sweep_abandoned_temp_dirs()
            self.state_dir = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
            (self.state_dir / _OWNER_FILE).write_text(str(os.getpid()))
        self._check_not_running()
        self._remove_owned_entries()
        state = self._dir()
        for sub in ("logs", "kubeconfigs", "run"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        self._stopped = False
        self._arm_cleanup()
        try:
            self._start_components(bins, stage_dir)
            self._create_nodes()
            self._wait_nodes_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        self._write_state()
        if self.background:
            self._disarm_cleanup()
        log.info(
            "sandbox up in %.1fs: %s (kubeconfig %s)", self.startup_seconds, self.server, self.kubeconfig
        )
        return self

    def stop(self) -> None:
        """Kill every component's process group (newest first) and remove what the sandbox wrote."""
        with self._lock:
            if self._stopped and not self._components and not self._guests:
                return
            # The sandbox's users first: an operator outliving its API server would only log errors.
            for name in reversed(list(self._guests)):
                self._kill(self._guests.pop(name))
            for name in reversed(COMPONENTS):
                comp = self._components.pop(name, None)
                if comp is not None:
                    self._kill(comp)
            self._stopped = True
            self._disarm_cleanup()
            if self.state_dir is not None:
                self._remove_owned_entries()
                if self._temp_state:
                    shutil.rmtree(self.state_dir, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        self.state_dir.rmdir()  # only if nothing else lives there

    @classmethod
    def attach(cls, state_dir: Path | str) -> Sandbox:
        """The sandbox a background `up` left in `state_dir` (for `status` and `down`)."""
        state_path = Path(state_dir) / _STATE_FILE
        try:
            state = json.loads(state_path.read_text())
        except FileNotFoundError:
            raise SandboxError(
                f"no sandbox state in {state_dir} (is it running? `sandbox up` first)"
            ) from None
        sb = cls(pools=[], state_dir=state_dir)
        sb.server = state["server"]
        sb.startup_seconds = state.get("startup_seconds")
        sb._components = {
            name: _Component(name=name, pid=c["pid"], log=Path(c["log"]), health_url=c["health_url"])
            for name, c in state["components"].items()
        }
        sb._stopped = False
        return sb

    def status(self) -> list[ComponentStatus]:
        result = []
        for name in COMPONENTS:
            comp = self._components.get(name)
            if comp is None:
                result.append(ComponentStatus(name, None, False, False, "not started", None))
                continue
            running = self._alive(comp)
            healthy, detail = self._probe(comp) if running else (False, "process exited")
            result.append(ComponentStatus(name, comp.pid, running, healthy, detail, comp.log))
        return result

    def restart_component(self, name: str) -> None:
        """Kill one component and start it again with the same command line (same ports, certificates
        and etcd data), then wait until it is healthy: for fault-injection tests."""
        comp = self._components.get(name)
        if comp is None or not comp.argv:
            raise SandboxError(f"cannot restart {name!r}: not started by this Sandbox object")
        self._kill(comp)
        restarted = self._spawn(name, comp.argv, comp.health_url)
        self._wait_healthy(restarted, time.monotonic() + self.startup_timeout)

    # ---- helpers for users -----------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the sandbox as admin; with check=True a failure raises with its stderr."""
        cmd = [str(self.bins.kubectl), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise SandboxError(
                f"`kubectl {' '.join(args)}` failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def spawn(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process that belongs with the sandbox (the demo's operator) and must not outlive it:
        its own process group, PR_SET_PDEATHSIG in the foreground, and ended by stop() before the
        control plane, on every path stop() runs on (call, atexit, SIGTERM/SIGHUP). Its output goes
        to `log_path(name)`."""
        if self._stopped:
            raise SandboxError(f"cannot start {name!r}: the sandbox is not running")
        if name in COMPONENTS or name in self._guests:
            raise SandboxError(f"cannot start {name!r}: the name is taken")
        comp = self._spawn(name, argv, "", env=env, guest=True)
        assert comp.popen is not None
        return comp.popen

    def log_path(self, name: str) -> Path:
        """The log of a component or of a process started with spawn()."""
        return self._dir() / "logs" / f"{name}.log"

    def env(self) -> dict[str, str]:
        """Environment for subprocesses that should talk to the sandbox (KUBECONFIG, PATH with bin_dir)."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    # ---- internals: processes ----------------------------------------------------------------------

    def _check_not_running(self) -> None:
        state_path = self._dir() / _STATE_FILE
        if not state_path.exists():
            return
        other = Sandbox.attach(self._dir())
        if any(other._alive(c) for c in other._components.values()):
            raise SandboxError(
                f"a sandbox is already running from {self._dir()} ({other.server}); "
                "stop it first (`mimo-operator sandbox down`)"
            )

    def _remove_owned_entries(self) -> None:
        state = self._dir()
        for entry in _OWNED_ENTRIES:
            path = state / entry
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _spawn(
        self,
        name: str,
        argv: Sequence[str],
        health_url: str,
        env: dict[str, str] | None = None,
        guest: bool = False,
    ) -> _Component:
        log_path = self.log_path(name)
        # Foreground children die with us; background ones must outlive the `sandbox up` command.
        die_with_parent = not self.background and threading.current_thread() is threading.main_thread()
        with log_path.open("ab") as log_fh:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                cwd=None if guest else self._dir() / "run",
                env=env,
                start_new_session=True,  # own process group: teardown kills the component and its children
                preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
            )
        comp = _Component(
            name=name, pid=popen.pid, log=log_path, health_url=health_url, popen=popen, argv=tuple(argv)
        )
        if guest:
            self._guests[name] = comp
        else:
            self._components[name] = comp
            self._write_state()  # at once, so `down` or a later sweep can find a half-started sandbox
        log.debug("started %s (pid %d): %s", name, popen.pid, " ".join(argv))
        return comp

    def _alive(self, comp: _Component) -> bool:
        if comp.popen is not None:
            return comp.popen.poll() is None
        return _pid_alive(comp.pid) and self._is_ours(comp.pid)

    def _is_ours(self, pid: int) -> bool:
        # An attached sandbox only knows pids from state.json; after a reboot or a long time those can
        # belong to unrelated processes. Every component's command line names the state directory.
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False
        return str(self._dir()) in cmdline

    def _kill(self, comp: _Component) -> None:
        if comp.popen is None and not self._alive(comp):
            return  # gone already, or the pid now belongs to someone else: never signal it
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(comp.pid, sig)
            deadline = time.monotonic() + (_STOP_GRACE_SECONDS if sig == signal.SIGTERM else 5.0)
            while time.monotonic() < deadline:
                if not self._alive(comp) and not self._group_alive(comp.pid):
                    break
                time.sleep(0.05)
            else:
                continue
            break
        if comp.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                comp.popen.wait(timeout=1)

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # Components do not fork, so the leader is the group: a zombie leader counts as gone.
        return not Path(f"/proc/{pgid}").exists() or _pid_alive(pgid)

    def _fail(self, comp: _Component, why: str) -> SandboxError:
        return SandboxError(
            f"sandbox component {comp.name} {why}\n--- last lines of {comp.log} ---\n{_log_tail(comp.log)}"
        )

    def _wait_healthy(self, comp: _Component, deadline: float) -> None:
        detail = "no response yet"
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            if not self._alive(comp):
                rc = comp.popen.returncode if comp.popen is not None else "?"
                raise self._fail(comp, f"exited during startup (exit code {rc})")
            healthy, detail = self._probe(comp)
            if healthy:
                log.debug("%s healthy after %.1fs", comp.name, time.monotonic() - t0)
                return
            time.sleep(0.1)
        raise self._fail(comp, f"did not become healthy within {self.startup_timeout:.0f}s ({detail})")

    def _ssl_context(self, *, verify: bool) -> ssl.SSLContext:
        if not verify:
            # Controller-manager, scheduler and kwok serve health on self-signed certs they generate.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        pki = self._pki_paths()
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        ctx.load_cert_chain(str(pki["admin.crt"]), str(pki["admin.key"]))
        return ctx

    def extension_server_tls(self) -> tuple[Path, Path, Path]:
        """(CA, certificate, key) for an aggregated API server a test runs on 127.0.0.1, behind the
        Service certs.EXTENSION_SERVICE_NAME in certs.EXTENSION_SERVICE_NAMESPACE (an ExternalName of
        localhost): the certificate names that Service and is signed by the sandbox CA, which the
        APIService's caBundle carries."""
        pki = self._pki_paths()
        return pki["ca"], pki["extension-server.crt"], pki["extension-server.key"]

    def _pki_paths(self) -> dict[str, Path]:
        """Files generate_pki wrote that the sandbox hands out."""
        d = self._dir() / "pki"
        return {
            "ca": d / "ca.crt",
            "admin.crt": d / "admin.crt",
            "admin.key": d / "admin.key",
            "extension-server.crt": d / "extension-server.crt",
            "extension-server.key": d / "extension-server.key",
        }

    def _probe(self, comp: _Component) -> tuple[bool, str]:
        url = comp.health_url
        try:
            ctx = None
            if url.startswith("https://"):
                ctx = self._ssl_context(verify=comp.name == "kube-apiserver")
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                body = resp.read().decode(errors="replace").strip()
        except urllib.error.HTTPError as exc:
            return False, f"{url} -> HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            return False, f"{url} -> {exc}"
        if comp.name == "etcd":
            ok = '"health":"true"' in body.replace(" ", "")
            return ok, body
        return True, body[:80]

    # ---- internals: control plane ------------------------------------------------------------------

    def _start_components(self, bins: build.BinPaths, kwok_dir: Path) -> None:
        """The control plane in dependency order, each component healthy before the next starts."""
        deadline = time.monotonic() + self.startup_timeout
        pki = self._generate_pki()
        etcd_url = self._start_etcd(bins, deadline)
        self._start_apiserver(bins, pki, etcd_url, deadline)
        kubeconfigs = self._write_kubeconfigs(pki)
        self._start_controller_manager(bins, pki, kubeconfigs["kube-controller-manager"], deadline)
        self._start_scheduler(bins, kubeconfigs["kube-scheduler"], deadline)
        self._start_kwok(bins, kwok_dir, kubeconfigs["kwok"], deadline)
        self._deadline = deadline

    def _generate_pki(self) -> Pki:
        return generate_pki(
            self._dir() / "pki",
            service_ip=SERVICE_IP,
            clients={
                "admin": ClientIdentity("admin", ("system:masters",)),
                # The bootstrap RBAC policy grants these exact user names their components' permissions.
                "kube-controller-manager": ClientIdentity("system:kube-controller-manager"),
                "kube-scheduler": ClientIdentity("system:kube-scheduler"),
                # kwok writes node and pod status across the cluster; no narrower built-in role fits.
                "kwok": ClientIdentity("kwok", ("system:masters",)),
            },
        )

    def _start_etcd(self, bins: build.BinPaths, deadline: float) -> str:
        """Starts etcd; returns its client URL."""
        state = self._dir()
        etcd_client, etcd_peer = _free_port(), _free_port()
        etcd = self._spawn(
            "etcd",
            [
                str(bins.etcd),
                "--name=sandbox",
                f"--data-dir={state / 'etcd-data'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=sandbox=http://127.0.0.1:{etcd_peer}",
                # Data is thrown away at teardown; fsync would only make every write wait on the disk.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            f"http://127.0.0.1:{etcd_client}/health",
        )
        self._wait_healthy(etcd, deadline)
        return f"http://127.0.0.1:{etcd_client}"

    def _start_apiserver(self, bins: build.BinPaths, pki: Pki, etcd_url: str, deadline: float) -> None:
        state = self._dir()
        api_port = _free_port()
        self.server = f"https://127.0.0.1:{api_port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(bins.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={state / 'pki' / 'apiserver-generated'}",
                f"--tls-cert-file={pki.apiserver.cert}",
                f"--tls-private-key-file={pki.apiserver.key}",
                f"--client-ca-file={pki.ca.cert}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.service_account_pub}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # No kubelets or real endpoints here: don't try to publish the apiserver's own endpoint.
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                *(
                    [f"--audit-policy-file={self.audit_policy}", f"--audit-log-path={self.audit_log}"]
                    if self.audit_policy
                    else []
                ),
            ],
            f"{self.server}/readyz",
        )
        self._wait_healthy(apiserver, deadline)

    def _write_kubeconfigs(self, pki: Pki) -> dict[str, Path]:
        """The admin kubeconfig users get, and one per component with that component's identity."""
        state = self._dir()
        kubeconfigs = state / "kubeconfigs"
        admin = pki.clients["admin"]
        self.kubeconfig.write_text(
            yaml.safe_dump(_kubeconfig(self.server, pki.ca.cert, admin.cert, admin.key, "admin"))
        )
        self.kubeconfig.chmod(0o600)
        component_kubeconfigs: dict[str, Path] = {}
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            pair = pki.clients[name]
            path = kubeconfigs / f"{name}.kubeconfig"
            path.write_text(yaml.safe_dump(_kubeconfig(self.server, pki.ca.cert, pair.cert, pair.key, name)))
            path.chmod(0o600)
            component_kubeconfigs[name] = path
        return component_kubeconfigs

    def _start_control_loop(
        self, name: str, binary: Path, kubeconfig: Path, cert_dir: str, extra: list[str], deadline: float
    ) -> None:
        """kube-controller-manager or kube-scheduler: its identity, a loopback health port, one instance."""
        port = _free_port()
        component = self._spawn(
            name,
            [
                str(binary),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self._dir() / 'pki' / cert_dir}",
                # One instance: skipping leader election saves the lease acquisition wait at startup.
                "--leader-elect=false",
                # The default 20 QPS client limit makes the node-lifecycle controller untaint ~5 nodes/s:
                # 45 s for a 200-node pool. A local apiserver takes far more.
                "--kube-api-qps=1000",
                "--kube-api-burst=2000",
                "--profiling=false",
                *extra,
            ],
            f"https://127.0.0.1:{port}/healthz",
        )
        self._wait_healthy(component, deadline)

    def _start_controller_manager(
        self, bins: build.BinPaths, pki: Pki, kubeconfig: Path, deadline: float
    ) -> None:
        extra = [
            # Signs ServiceAccount tokens the controllers use, and publishes kube-root-ca.crt.
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca.cert}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*",
        ]
        name, binary = "kube-controller-manager", bins.kube_controller_manager
        self._start_control_loop(name, binary, kubeconfig, "kcm-generated", extra, deadline)

    def _start_scheduler(self, bins: build.BinPaths, kubeconfig: Path, deadline: float) -> None:
        self._start_control_loop(
            "kube-scheduler", bins.kube_scheduler, kubeconfig, "scheduler-generated", [], deadline
        )

    def _start_kwok(self, bins: build.BinPaths, kwok_dir: Path, kubeconfig: Path, deadline: float) -> None:
        kwok_port = _free_port()
        stage_args = []
        for rel in KWOK_STAGE_FILES:
            stage = kwok_dir / rel
            if not stage.is_file():
                raise SandboxError(f"kwok stage {stage} is missing from the kwok module directory {kwok_dir}")
            stage_args.append(f"--config={stage}")
        kwok = self._spawn(
            "kwok",
            [
                str(bins.kwok),
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={node_pools.KWOK_ANNOTATION}={node_pools.KWOK_ANNOTATION_VALUE}",
                # Leases keep nodes alive for the node-lifecycle controller without status rewrites.
                "--node-lease-duration-seconds=40",
                f"--cidr={POD_CIDR}",
                f"--server-address=127.0.0.1:{kwok_port}",
                *stage_args,
            ],
            f"http://127.0.0.1:{kwok_port}/healthz",
        )
        self._wait_healthy(kwok, deadline)

    def _api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.server}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10, context=self._ssl_context(verify=True)) as resp:
            return json.loads(resp.read() or b"null")

    def _create_nodes(self) -> None:
        for node in node_pools.node_manifests(self.pools):
            try:
                self._api("POST", "/api/v1/nodes", node)
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")
                raise SandboxError(
                    f"creating node {node['metadata']['name']} failed: {exc.code} {detail}"
                ) from exc

    def _wait_nodes_ready(self) -> None:
        wanted = set(self.node_names)
        pending: set[str] = set(wanted)
        while time.monotonic() < self._deadline:
            for comp in self._components.values():
                if not self._alive(comp):
                    raise self._fail(comp, "exited while waiting for the nodes to become Ready")
            items = self._api("GET", "/api/v1/nodes")["items"]
            ready = set()
            for node in items:
                conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
                taints = {t["key"] for t in node.get("spec", {}).get("taints", []) or []}
                if conditions.get("Ready") == "True" and not taints & {
                    "node.kubernetes.io/not-ready",
                    "node.kubernetes.io/unreachable",
                }:
                    ready.add(node["metadata"]["name"])
            pending = wanted - ready
            if not pending:
                return
            time.sleep(0.3)
        example = sorted(pending)[:5]
        raise self._fail(
            self._components["kwok"],
            f"did not make {len(pending)} node(s) Ready and untainted in time (e.g. {example})",
        )

    def _write_state(self) -> None:
        state = {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "startup_seconds": self.startup_seconds,
            "components": {
                name: {"pid": c.pid, "log": str(c.log), "health_url": c.health_url}
                for name, c in self._components.items()
            },
            "nodes": self.node_names,
        }
        (self._dir() / _STATE_FILE).write_text(json.dumps(state, indent=2))

    # ---- internals: cleanup on exit and signals -------------------------------------------------------

    def _arm_cleanup(self) -> None:
        if self._armed:
            return
        self._armed = True
        atexit.register(self.stop)
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for signum in (signal.SIGTERM, signal.SIGHUP):
            self._previous_handlers[signum] = signal.getsignal(signum)
            signal.signal(signum, self._on_signal)

    def _disarm_cleanup(self) -> None:
        if not self._armed:
            return
        self._armed = False
        atexit.unregister(self.stop)
        if threading.current_thread() is threading.main_thread():
            for signum, previous in self._previous_handlers.items():
                signal.signal(signum, previous)
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        self.stop()  # restores the previous handler
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            # Die the way the signal intended (exit status, parent's view) now that the sandbox is gone.
            os.kill(os.getpid(), signum)


def _sweep_abandoned_temp_dirs() -> None:
    """Remove temporary sandboxes whose owning process died without cleaning up (SIGKILL, OOM).

    Their components died with the owner (PR_SET_PDEATHSIG); only the directories remain, and any
    straggler recorded in state.json is killed here before the directory goes.
    """
    for candidate in Path(tempfile.gettempdir()).glob(f"{_TEMP_PREFIX}*"):
        try:
            owner = int((candidate / _OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if owner == os.getpid() or _pid_alive(owner):
            continue
        with contextlib.suppress(SandboxError, OSError, KeyError, ValueError):
            Sandbox.attach(candidate).stop()
        shutil.rmtree(candidate, ignore_errors=True)


def default_state_dir() -> Path:
    """Where `mimo-operator sandbox up` keeps a background sandbox."""
    return build.cache_dir() / "sandbox"


@dataclass(frozen=True)
class NotYet:
    """A falsy predicate result that still says what was observed, for wait_until's failure message."""

    observed: Any

    def __bool__(self) -> bool:
        return False


def wait_until(
    predicate: Callable[[], Any], *, timeout: float, description: str, interval: float = 0.2
) -> Any:
    """Poll `predicate` until it returns a truthy value (returned); fail with the last value seen.

    A predicate can return `NotYet(observed)` to report what it saw while still counting as "not yet".

    Lives here rather than in the pytest plugin so non-test code (the demo, benchmarks) can wait the
    same way; the plugin re-exports it as `wait_for`.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: BaseException | None = None
    while True:
        try:
            last = predicate()
            last_exc = None
            if last:
                return last
        except Exception as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            seen = f"last exception: {last_exc!r}" if last_exc is not None else f"last value: {last!r}"
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {description}; {seen}")
        time.sleep(interval)
