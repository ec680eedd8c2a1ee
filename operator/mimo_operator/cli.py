"""`mimo-operator`: plan a deployment, list GPUs, render manifests, run the operator or the sandbox.

Every subcommand returns an exit status instead of raising: 0 success, 1 bad arguments or input
(one line on stderr, no traceback), 2 a plan that cannot work, 3 (`run --leader-elect`) the leader
lease was lost.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import yaml

from mimo_operator.api import SpecInvalid, parse_mimo_deployment
from mimo_operator.models.family import KNOWN_CHECKPOINTS, UnknownModel, resolve_model
from mimo_operator.models.gpus import GPU_CATALOG, GpuSpec, custom_gpu
from mimo_operator.models.limits import (
    DEFAULT_DOWNLOAD_RATE_MIB_PER_S,
    DEFAULT_ENGINE_START_SECONDS,
    DEFAULT_LOAD_RATE_MIB_PER_S,
)
from mimo_operator.planner import ParallelismOverrides, PlanError, PlanRequest
from mimo_operator.planner.attention import attention_plan
from mimo_operator.planner.coldstart import cold_start
from mimo_operator.planner.report import plan_as_dict, plan_as_table, plan_explanation
from mimo_operator.planner.types import DEFAULT_GPU_MEMORY_UTILIZATION, MaxModelLen
from mimo_operator.render import RenderConfig, plan_for, render_children
from mimo_operator.render.children import render_download_children
from mimo_operator.render.planning import AWAITING_CHECKPOINT_CONFIG, MTP_SETTING, plan_model

EXIT_OK, EXIT_USAGE, EXIT_INFEASIBLE = 0, 1, 2
EXIT_LEADERSHIP_LOST = 3  # `run --leader-elect` only: this replica stopped leading and must restart

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """Bad arguments or input: printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _max_model_len(text: str) -> MaxModelLen:
    return "auto" if text == "auto" else _positive(text)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value  # the planner refuses values outside 0.5..0.98, with the reason


def _expert(text: str) -> bool | None:
    choices = {"auto": None, "true": True, "on": True, "false": False, "off": False}
    if text not in choices:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}, got {text!r}")
    return choices[text]


def resolve_gpu(key: str, memory_gib: float | None, per_node: int | None) -> GpuSpec:
    """A catalog GPU, or `custom` with its memory given."""
    if key == "custom":
        if memory_gib is None:
            raise UsageError("--gpu custom needs --gpu-memory-gib")
        return custom_gpu(memory_gib, per_node or 8)
    if key not in GPU_CATALOG:
        raise UsageError(f"unknown GPU {key!r}; known: {', '.join(GPU_CATALOG)} or custom")
    return GPU_CATALOG[key]


def _print(data: object, output: str) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


def _cmd_plan(args: argparse.Namespace) -> int:
    gpu = resolve_gpu(args.gpu, args.gpu_memory_gib, args.gpus_per_node)
    request = PlanRequest(
        precision=args.precision,
        gpu=gpu,
        gpus_per_node=args.gpus_per_node or gpu.default_per_node,
        kv_cache_dtype=args.kv_cache_dtype,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        min_concurrency=args.min_concurrency,
        overrides=ParallelismOverrides(
            tensor=args.tensor_parallel,
            pipeline=args.pipeline_parallel,
            data=args.data_parallel,
            expert=args.expert_parallel,
        ),
        strategy=args.strategy,
        mtp=MTP_SETTING[args.mtp],
    )
    config = None
    if args.model_config is not None:
        try:
            config = args.model_config.read_text()
        except OSError as err:
            raise UsageError(f"cannot read --model-config: {err}") from None
    try:
        resolved = resolve_model(args.model, config, args.copy_of, args.precision)
    except UnknownModel as err:
        raise UsageError(str(err)) from None
    if args.text_only:
        resolved = replace(resolved, profile=resolved.profile.without_encoders())
    planned = plan_model(request, resolved, args.model)
    cold = None
    if not isinstance(planned, PlanError):
        cold = cold_start(
            planned,
            args.fetch,
            download_every_start=args.fetch == "vllm",
            download_rate_mib_per_s=args.download_rate_mibps,
            load_rate_mib_per_s=args.load_rate_mibps,
            engine_start_seconds=args.engine_start_seconds,
        )
    if args.explain and not isinstance(planned, PlanError):
        sys.stdout.write(plan_explanation(planned) + "\n")
    elif args.output == "table":
        sys.stdout.write(plan_as_table(planned, cold) + "\n")
    else:
        _print(plan_as_dict(planned, cold), args.output)
    return EXIT_INFEASIBLE if isinstance(planned, PlanError) else EXIT_OK


def _attention_cell(gpu: GpuSpec, kv_cache_dtype: str) -> str:
    """`FLASH_ATTN_DIFFKV`, `TRITON_ATTN_DIFFKV (flag)` or `no`: what planner/attention.py decides."""
    choice = attention_plan(gpu, "fp8" if kv_cache_dtype == "fp8" else "auto")
    if choice.problem is not None:
        return "no"
    if choice.backend is None:
        return "unchecked"
    return choice.backend + (" (flag)" if choice.flag else "")


def _cmd_gpus(args: argparse.Namespace) -> int:
    rows: list[dict[str, str | int | float | bool]] = [
        {
            "key": g.key,
            "vendor": g.vendor,
            "architecture": g.arch_name,
            "product": g.product_label,
            "memoryMiB": g.memory_mib,
            "memoryGiB": round(g.memory_gib, 1),
            "bandwidthGBps": g.bandwidth_gbps,
            "nativeFp8": g.native_fp8,
            "perNode": g.default_per_node,
            "attentionBf16Kv": _attention_cell(g, "auto"),
            "attentionFp8Kv": _attention_cell(g, "fp8"),
        }
        for g in GPU_CATALOG.values()
    ]
    if args.output != "table":
        _print(rows, args.output)
        return EXIT_OK
    header = [
        "GPU",
        "ARCH",
        "PRODUCT LABEL",
        "MiB",
        "GB/s",
        "PER NODE",
        "ATTENTION bf16 KV",
        "ATTENTION fp8 KV",
    ]
    table = [header] + [
        [
            str(r["key"]),
            str(r["architecture"]),
            str(r["product"]),
            str(r["memoryMiB"]),
            f"{r['bandwidthGBps']:g}",
            str(r["perNode"]),
            str(r["attentionBf16Kv"]),
            str(r["attentionFp8Kv"]),
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        sys.stdout.write(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )
    return EXIT_OK


def load_manifests(path: str) -> list[dict[str, object]]:
    """MimoDeployment documents from a YAML file (several documents allowed) or `-` for stdin."""
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
        docs = [doc for doc in yaml.safe_load_all(text) if doc]
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None
    if not docs or not all(isinstance(doc, dict) for doc in docs):
        raise UsageError(f"{path} holds no MimoDeployment")
    return docs


def _cmd_render(args: argparse.Namespace) -> int:
    status = EXIT_OK
    out: list[dict[str, object]] = []
    for doc in load_manifests(args.filename):
        if doc.get("kind") != "MimoDeployment":
            continue
        meta = doc.setdefault("metadata", {})
        if isinstance(meta, dict) and args.namespace:
            meta["namespace"] = args.namespace
        try:
            md = parse_mimo_deployment(doc)
        except SpecInvalid as exc:
            raise UsageError(f"{args.filename}: {exc}") from None
        planned = plan_for(md.spec)
        if isinstance(planned, PlanError) and planned.reason == AWAITING_CHECKPOINT_CONFIG:
            # What the operator creates first; the rest follows from the config.json the Job reads.
            sys.stderr.write(
                f"{md.metadata.name}: {planned.message}; rendered are the weights' children only "
                f"(to see the plan now: mimo-operator plan --model {md.spec.model.name} "
                "--model-config config.json)\n"
            )
            out.extend(render_download_children(md, RenderConfig()))
            continue
        if isinstance(planned, PlanError):
            sys.stderr.write(f"{md.metadata.name}: infeasible ({planned.reason}): {planned.message}\n")
            status = EXIT_INFEASIBLE
            continue
        out.extend(render_children(md, planned, RenderConfig()))
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False))
    return status


def _add_plan_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plan", help="plan one replica of a MiMo model on a GPU type, no cluster needed")
    p.add_argument(
        "--model", default="XiaomiMiMo/MiMo-V2-Flash", help=f"one of {', '.join(KNOWN_CHECKPOINTS)}"
    )
    p.add_argument("--model-config", type=Path, help="config.json of a fine-tune of a known architecture")
    p.add_argument(
        "--copy-of", choices=list(KNOWN_CHECKPOINTS), help="--model is a copy of this, in --precision"
    )
    p.add_argument("--text-only", action="store_true", help="multimodal models: skip the encoders")
    p.add_argument("--precision", choices=["bf16", "fp8", "int4"], default="fp8")
    p.add_argument("--gpu", default="H100-80GB", help=f"one of {', '.join(GPU_CATALOG)}, or custom")
    p.add_argument("--gpu-memory-gib", type=float, help="memory of a custom GPU, as the driver reports it")
    p.add_argument("--gpus-per-node", type=_positive, help="default: the catalog's value for the GPU")
    p.add_argument("--kv-cache-dtype", choices=["auto", "fp8"], default="auto")
    p.add_argument("--max-model-len", type=_max_model_len, default="auto", help="tokens, or auto")
    p.add_argument("--min-concurrency", type=_positive, default=1, help="max-length requests that must fit")
    p.add_argument("--gpu-memory-utilization", type=_fraction, default=DEFAULT_GPU_MEMORY_UTILIZATION)
    p.add_argument("--tensor-parallel", type=_positive)
    p.add_argument("--pipeline-parallel", type=_positive)
    p.add_argument("--data-parallel", type=_positive)
    p.add_argument("--expert-parallel", type=_expert, default=None, help="auto, true or false")
    p.add_argument("--strategy", choices=["latency", "throughput"], default="latency")
    p.add_argument(
        "--mtp",
        choices=["off", "on", "auto"],
        default="off",
        help="MTP speculative decoding; opt-in: no public vLLM run of this model uses it (auto: on w/o PP)",
    )
    p.add_argument(
        "--fetch",
        choices=["job", "vllm", "none"],
        default="job",
        help="cold start: a download Job fills a cache once (job), vLLM downloads into each pod's emptyDir "
        "on every start (vllm), or the weights are in place (none)",
    )
    for flag, default in (
        ("--download-rate-mibps", DEFAULT_DOWNLOAD_RATE_MIB_PER_S),
        ("--load-rate-mibps", DEFAULT_LOAD_RATE_MIB_PER_S),
        ("--engine-start-seconds", DEFAULT_ENGINE_START_SECONDS),
    ):
        p.add_argument(flag, type=_positive, default=default, help=f"cold start estimate (default {default})")
    p.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    p.add_argument(
        "--explain",
        action="store_true",
        help="print the derivation: weight bytes per group, reserve, KV per layer kind, what vLLM will log",
    )
    p.set_defaults(func=_cmd_plan)


def _cmd_crd(args: argparse.Namespace) -> int:
    from mimo_operator.api.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import logging
    import os

    import kopf

    from mimo_operator.handlers.runtime import run_operator
    from mimo_operator.handlers.settings import OperatorSettings
    from mimo_operator.kube.lease import LeadershipLost

    try:
        settings = OperatorSettings.load(
            args.config,
            namespaces=args.namespace or None,
            all_namespaces=True if args.all_namespaces else None,
            log_format=args.log_format,
            liveness_port=args.liveness_port,
            metrics_port=args.metrics_port,
            leader_elect=True if args.leader_elect else None,
        )
    except (OSError, ValueError) as exc:
        raise UsageError(f"invalid operator configuration: {exc}".replace("\n", " ")) from None
    if not settings.all_namespaces and not settings.namespaces:
        own = os.environ.get("POD_NAMESPACE")
        if not own:
            raise UsageError("say which namespaces to watch: --namespace NS (repeatable) or --all-namespaces")
        settings = settings.model_copy(update={"namespaces": [own]})
    if settings.leader_elect and not settings.lease_namespace:
        # The operator's own namespace in a pod; else the first namespace it watches.
        lease_namespace = os.environ.get("POD_NAMESPACE") or next(iter(settings.namespaces), "")
        if not lease_namespace:
            raise UsageError("leader election: set MIMO_OPERATOR_LEASE_NAMESPACE or POD_NAMESPACE")
        settings = settings.model_copy(update={"lease_namespace": lease_namespace})
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
    )
    if not args.verbose:
        # kopf logs every event handler call at INFO; the operator logs what it changed instead.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        asyncio.run(run_operator(settings))
    except OSError as exc:  # e.g. the metrics or liveness port is taken
        raise UsageError(f"cannot start the operator: {exc}") from None
    except LeadershipLost as exc:
        # client-go's convention: a leader that lost its lease exits, and is restarted as a standby.
        sys.stderr.write(f"mimo-operator: {exc}; exiting so that a restart makes this replica a standby\n")
        return EXIT_LEADERSHIP_LOST
    return EXIT_OK


SANDBOX_MISSING = (
    "the sandbox is developer tooling in its own distribution, not part of the operator: "
    "install it with `pip install -e ./sandbox` from a clone of the repository (`make venv` does)"
)


def _sandbox_missing(exc: ModuleNotFoundError) -> UsageError:
    """The usage error for an import of the sandbox where it is not installed; any other missing module
    is a real error and is raised as it was."""
    if (exc.name or "").partition(".")[0] != "mimo_sandbox":
        raise exc
    return UsageError(SANDBOX_MISSING)


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        from mimo_sandbox.demo import run_demo
    except ModuleNotFoundError as exc:
        raise _sandbox_missing(exc) from None
    return run_demo(args.examples, interactive=not args.non_interactive, timeout=args.timeout)


def _cmd_sandbox(words: list[str]) -> int:
    # Developer tooling (Go builds, certificates, process supervision) is the mimo-sandbox
    # distribution, imported only here and in `demo`; the operator's package and image lack it.
    try:
        from mimo_sandbox.command import main as sandbox_main
    except ModuleNotFoundError as exc:
        raise _sandbox_missing(exc) from None
    return sandbox_main(words)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mimo-operator", description=__doc__)
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser
    )
    _add_plan_parser(sub)
    g = sub.add_parser("gpus", help="list the GPU catalog")
    g.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")
    g.set_defaults(func=_cmd_gpus)
    r = sub.add_parser("render", help="print every child manifest of MimoDeployments, no cluster needed")
    r.add_argument("-f", "--filename", required=True, help="YAML file of MimoDeployments, or - for stdin")
    r.add_argument("-n", "--namespace", help="namespace to render into (default: the manifest's, or default)")
    r.set_defaults(func=_cmd_render)
    crd = sub.add_parser("crd", help="print the MimoDeployment CustomResourceDefinition")
    crd.set_defaults(func=_cmd_crd)
    run = sub.add_parser("run", help="run the operator against the cluster of the current kubeconfig")
    run.add_argument("-n", "--namespace", action="append", help="namespace to watch (repeatable)")
    run.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    run.add_argument("--config", type=Path, help="YAML file of operator settings (env MIMO_OPERATOR_* wins)")
    run.add_argument("--log-format", choices=["text", "json"])
    run.add_argument("--liveness-port", type=int, help="port of /healthz (0 disables)")
    run.add_argument("--metrics-port", type=int, help="port of the Prometheus /metrics endpoint (0 disables)")
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="reconcile only while holding the leader Lease, so several replicas can run (HA)",
    )
    run.add_argument("-v", "--verbose", action="store_true")
    run.set_defaults(func=_cmd_run)
    demo = sub.add_parser("demo", help="run the examples on a sandbox cluster with simulated GPU nodes")
    demo.add_argument("--examples", type=Path, default=Path("examples"), help="directory of the examples")
    demo.add_argument("--non-interactive", action="store_true", help="print the result and tear down")
    demo.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the examples")
    demo.set_defaults(func=_cmd_demo)
    # Listed for --help only: main() hands `sandbox ...` to the sandbox's own parser before parsing.
    sub.add_parser("sandbox", help="local Kubernetes control plane with simulated GPU nodes (kwok)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        if words[:1] == ["sandbox"]:  # the sandbox's own parser reads the rest
            return _cmd_sandbox(words)
        args = build_parser().parse_args(words)
        handler: Handler = args.func
        return handler(args)
    except UsageError as exc:
        sys.stderr.write(f"mimo-operator: error: {exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
