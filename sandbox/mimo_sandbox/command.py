"""`mimo-operator sandbox up|down|status|kubeconfig`: the sandbox from the command line.

`up` leaves the control plane running in the background (pids, logs and kubeconfig in the state
directory, default `~/.cache/mimo-operator/sandbox`) so `make demo`, kubectl and an operator started by
hand can all share it; `up --foreground` keeps it tied to the terminal and tears it down on Ctrl-C.
This is CLI code, so it prints; the library modules log.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from mimo_sandbox.build import BuildError
from mimo_sandbox.cluster import Sandbox, SandboxError, default_state_dir


def _out(message: object) -> None:
    sys.stdout.write(f"{message}\n")


def _err(message: object) -> None:
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def add_sandbox_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `sandbox` and its sub-commands to the top-level CLI's subparsers."""
    parser = subparsers.add_parser(
        "sandbox",
        help="local Kubernetes control plane with simulated GPU nodes (kwok)",
        description="Run a real kube-apiserver/etcd/controller-manager/scheduler with kwok GPU nodes.",
    )
    parser.set_defaults(func=run_sandbox_command)
    commands = parser.add_subparsers(dest="sandbox_command", required=True, metavar="COMMAND")

    def with_state_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--state-dir",
            type=Path,
            default=None,
            help=f"where pids, logs and the kubeconfig live (default: {default_state_dir()})",
        )
        return p

    up = with_state_dir(commands.add_parser("up", help="start the sandbox (in the background by default)"))
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops the sandbox")
    up.add_argument("--pools", type=Path, default=None, help="node pools YAML (default: packaged pools.yaml)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for startup")
    with_state_dir(commands.add_parser("down", help="stop the background sandbox and remove its state"))
    with_state_dir(commands.add_parser("status", help="report each component (exit 1 if any is unhealthy)"))
    with_state_dir(commands.add_parser("kubeconfig", help="print the path of the sandbox's kubeconfig"))


def run_sandbox_command(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir or default_state_dir()
    try:
        if args.sandbox_command == "up":
            return _up(state_dir, pools=args.pools, foreground=args.foreground, timeout=args.timeout)
        if args.sandbox_command == "down":
            return _down(state_dir)
        if args.sandbox_command == "status":
            return _status(state_dir)
        if args.sandbox_command == "kubeconfig":
            sandbox = Sandbox.attach(state_dir)
            _out(sandbox.kubeconfig)
            return 0
    except (SandboxError, BuildError) as exc:
        _err(f"error: {exc}")
        return 1
    _err(f"error: unknown sandbox command {args.sandbox_command!r}")
    return 2


def _up(state_dir: Path, *, pools: Path | None, foreground: bool, timeout: float) -> int:
    sandbox = Sandbox(pools=pools, state_dir=state_dir, background=not foreground, startup_timeout=timeout)
    _err(f"starting sandbox in {state_dir} ...")
    sandbox.start()
    _err(f"sandbox up in {sandbox.startup_seconds:.1f}s: {sandbox.server}")
    _err(f"  nodes: {len(sandbox.node_names)} ({', '.join(p.name for p in sandbox.pools)})")
    _err(f"  export KUBECONFIG={sandbox.kubeconfig}")
    _err(f"  export PATH={sandbox.bin_dir}:$PATH")
    if not foreground:
        _err("  stop it with: mimo-operator sandbox down")
        _out(sandbox.kubeconfig)
        return 0
    _err("running in the foreground; Ctrl-C to stop")
    try:
        while True:
            signal.pause()  # SIGTERM is handled by the sandbox itself (stops, then exits)
    except KeyboardInterrupt:
        _err("\nstopping sandbox ...")
    finally:
        sandbox.stop()
    return 0


def _down(state_dir: Path) -> int:
    try:
        sandbox = Sandbox.attach(state_dir)
    except SandboxError:
        _err(f"no sandbox running from {state_dir}")
        return 0
    sandbox.stop()
    _err(f"sandbox stopped ({state_dir} cleaned up)")
    return 0


def _status(state_dir: Path) -> int:
    try:
        sandbox = Sandbox.attach(state_dir)
    except SandboxError:
        _out(f"no sandbox running from {state_dir}")
        return 1
    _out(f"server: {sandbox.server}")
    _out(f"kubeconfig: {sandbox.kubeconfig}")
    all_ok = True
    for comp in sandbox.status():
        state = "healthy" if comp.healthy else ("running, unhealthy" if comp.running else "DOWN")
        all_ok = all_ok and comp.healthy
        _out(f"  {comp.name:<24} pid {comp.pid!s:<8} {state:<18} {comp.detail}")
    return 0 if all_ok else 1


def main(argv: list[str] | None = None) -> int:
    """`mimo-operator sandbox ...` (the CLI hands its words over) and `python -m mimo_sandbox.command`."""
    parser = argparse.ArgumentParser(prog="mimo-operator")
    add_sandbox_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
