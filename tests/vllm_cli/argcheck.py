"""Check `vllm serve` command lines against vLLM's own argument parser.

Why this exists: the operator renders `vllm serve ...` command lines for pods we cannot start here
(no GPU). A flag that vLLM renamed or removed would only show up as a crash-looping pod on a real
cluster. This script builds the exact parser that `vllm serve` builds (vLLM 0.33.0, read from
vllm/entrypoints/cli/main.py and vllm/entrypoints/cli/serve.py) and reports what it makes of each
command line, so unit tests can catch that on a laptop.

It runs under the cached vLLM venv's interpreter (see harness.py), never the project's, and so
must not import the operator package. Protocol:

  stdin:  JSON list of argv lists, each the arguments after `vllm serve` (model tag first).
  stdout: JSON list, one object per argv, in order:
          {"ok": bool, "error": str | null, "parsed": {dest: value, ...} | null,
           "deprecated": [dest, ...]}
  `argcheck.py --registries` instead prints {"tool_call_parsers": [...], "reasoning_parsers": [...]}.

"ok" means `vllm serve` would get past every check it makes before touching the model:
argparse itself, `ServeSubcommand.validate` (validate_parsed_serve_args), and the parser-name
check that `setup_server` does (validate_api_server_args) -- the latter two raise TypeError,
ValueError or KeyError rather than exiting, and both are caught.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import io
import json
import sys
from typing import Any

from vllm_process import json_channel  # type: ignore[import-not-found,unused-ignore]

_JSON_OUT = json_channel()  # before anything from vLLM is imported

# vLLM lives only in the cached venv, so the project's mypy cannot see it (hence the ignores).
from vllm.entrypoints.cli.serve import ServeSubcommand  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.entrypoints.common.cli_args import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    validate_parsed_serve_args,
)
from vllm.reasoning import ReasoningParserManager  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.tool_parsers import ToolParserManager  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
from vllm.utils.argparse_utils import (  # type: ignore[import-not-found,unused-ignore]  # noqa: E402
    FlexibleArgumentParser,
)


def build_parser() -> tuple[FlexibleArgumentParser, FlexibleArgumentParser]:
    """The top-level `vllm` parser with only the `serve` subcommand, built as main() builds it.

    Going through the subparser (rather than calling make_arg_parser on a bare parser) keeps the
    behaviour that FlexibleArgumentParser.parse_args applies only when argv[0] == "serve": the
    `--model` -> positional rewrite and the `--served-model-name` without a model check.
    """
    # prog="vllm" so errors read as a user would see them ("vllm: error: unrecognized ...").
    top = FlexibleArgumentParser(prog="vllm", description="vLLM CLI")
    subparsers = top.add_subparsers(required=False, dest="subparser")
    serve = ServeSubcommand().subparser_init(subparsers)
    return top, serve


def jsonable(value: Any) -> Any:
    """Parsed values include enums and config dataclasses; keep what JSON can carry."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return repr(value)


def check_parser_names(ns: argparse.Namespace) -> None:
    """The name checks of validate_api_server_args (vllm/entrypoints/common/cli_args.py).

    `--reasoning-parser` and `--tool-call-parser` carry no argparse choices ("Choices need to be
    validated after parsing to include plugins", vllm/engine/arg_utils.py), so a typo passes
    argparse and only fails in setup_server. We check the registries the same way, except that
    we cannot load a --tool-parser-plugin / --reasoning-parser-plugin, so names are then trusted.
    """
    tool = getattr(ns, "tool_call_parser", None)
    if tool and not getattr(ns, "tool_parser_plugin", None):
        valid = ToolParserManager.list_registered()
        if tool not in valid:
            raise KeyError(f"invalid tool call parser: {tool} (chose from {{ {','.join(valid)} }})")
    reasoning = getattr(ns, "reasoning_parser", None)
    if reasoning and not getattr(ns, "reasoning_parser_plugin", None):
        valid = ReasoningParserManager.list_registered()
        if reasoning not in valid:
            raise KeyError(f"invalid reasoning parser: {reasoning} (chose from {{ {','.join(valid)} }})")


def check_one(top: FlexibleArgumentParser, serve: FlexibleArgumentParser, argv: list[str]) -> dict[str, Any]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = top.parse_args(["serve", *argv])
    except SystemExit as exc:
        message = err.getvalue().strip() or f"argparse exited with status {exc.code}"
        return {"ok": False, "error": message, "parsed": None, "deprecated": []}
    except Exception as exc:  # FlexibleArgumentParser raises ValueError for some misuse
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "parsed": None, "deprecated": []}

    # Python < 3.13: FlexibleArgumentParser keeps deprecated actions itself (argparse_utils.py)
    # and only logs a warning; surface them so a renderer can be held to non-deprecated flags.
    deprecated = sorted(
        a.dest
        for a in getattr(serve, "_deprecated", set())
        if hasattr(ns, a.dest) and getattr(ns, a.dest) != a.default
    )
    parsed = {k: jsonable(v) for k, v in vars(ns).items() if k != "subparser"}
    try:
        validate_parsed_serve_args(ns)
        if not ns.headless:  # headless workers never run setup_server
            check_parser_names(ns)
    except (TypeError, ValueError, KeyError) as exc:
        return {
            "ok": False,
            "error": f"{type(exc).__name__}: {exc}",
            "parsed": parsed,
            "deprecated": deprecated,
        }
    return {"ok": True, "error": None, "parsed": parsed, "deprecated": deprecated}


def main() -> int:
    if sys.argv[1:] == ["--registries"]:
        out: Any = {
            "tool_call_parsers": sorted(ToolParserManager.list_registered()),
            "reasoning_parsers": sorted(ReasoningParserManager.list_registered()),
        }
    else:
        argvs = json.load(sys.stdin)
        if not isinstance(argvs, list) or not all(
            isinstance(a, list) and all(isinstance(s, str) for s in a) for a in argvs
        ):
            print("argcheck: stdin must be a JSON list of lists of strings", file=sys.stderr)
            return 2
        top, serve = build_parser()
        out = [check_one(top, serve, argv) for argv in argvs]
    json.dump(out, _JSON_OUT)
    _JSON_OUT.write("\n")
    _JSON_OUT.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
