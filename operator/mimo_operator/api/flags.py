"""vLLM flags the operator owns, and how to recognise them in extraArgs however they are spelled.

One definition serves the CRD's CEL rules (refused at `kubectl apply`) and the operator's own check
(refused again when rendering, for objects that bypassed validation).
"""

from __future__ import annotations

import re

# vLLM flags the operator derives from the plan and the spec; extraArgs may not set them, because a
# second value would silently win or conflict (checked by a CEL rule and again when rendering).
OWNED_FLAGS: tuple[str, ...] = (
    "--tensor-parallel-size",
    "--pipeline-parallel-size",
    "--data-parallel-size",
    "--data-parallel-size-local",
    "--data-parallel-address",
    "--data-parallel-rpc-port",
    "--data-parallel-start-rank",
    "--enable-expert-parallel",
    "--max-model-len",
    "--gpu-memory-utilization",
    "--kv-cache-dtype",
    "--served-model-name",
    "--revision",
    "--download-dir",
    "--trust-remote-code",
    "--speculative-config",
    "--api-key",
    "--host",
    "--port",
    "--headless",
    "--nnodes",
    "--node-rank",
    "--master-addr",
    "--master-port",
    "--default-chat-template-kwargs",
)


# Owned vLLM flags whose value comes from one obvious spec field: the CEL message points the user there.
# Flags of OWNED_FLAGS not listed here are multi-node and server wiring the operator derives itself.
OWNED_FLAG_SOURCES: dict[str, str] = {
    "--tensor-parallel-size": "spec.parallelism.tensor",
    "--pipeline-parallel-size": "spec.parallelism.pipeline",
    "--data-parallel-size": "spec.parallelism.data",
    "--enable-expert-parallel": "spec.parallelism.expert",
    "--max-model-len": "spec.context.maxModelLen",
    "--gpu-memory-utilization": "spec.gpuMemoryUtilization",
    "--kv-cache-dtype": "spec.kvCacheDtype",
    "--served-model-name": "spec.model.servedName",
    "--revision": "spec.model.revision",
    "--download-dir": "spec.model.cache",
    "--speculative-config": "spec.speculativeDecoding",
    "--api-key": "spec.serving.apiKeySecretRef",
    "--default-chat-template-kwargs": "spec.thinking.default",
}

# Other option strings vLLM 0.33.0 maps to the same setting as an owned flag (vllm/engine/arg_utils.py;
# checked with the real parser from tests/vllm_cli). Refusing them closes the obvious ways around the
# long-name check.
_VLLM_ALIASES: dict[str, tuple[str, ...]] = {
    "--tensor-parallel-size": ("-tp",),
    "--pipeline-parallel-size": ("-pp",),
    "--data-parallel-size": ("-dp",),
    "--data-parallel-size-local": ("-dpl",),
    "--data-parallel-address": ("-dpa",),
    "--data-parallel-rpc-port": ("-dpp",),
    "--data-parallel-start-rank": ("-dpr",),
    "--enable-expert-parallel": ("-ep", "--disable-expert-parallel"),
    "--gpu-memory-utilization": ("--device-memory-utilization",),
    "--speculative-config": ("-sc",),
    "--nnodes": ("-n",),
    "--node-rank": ("-r",),
}


def _prefixes(name: str) -> str:
    """RE2 matching every non-empty prefix of `name`, with `_` allowed for `-`: `t(p)?` for `tp`."""
    parts = ["[-_]" if c == "-" else re.escape(c) for c in name]
    regex = ""
    for part in reversed(parts[1:]):
        regex = f"({part}{regex})?"
    return parts[0] + regex


def owned_flag_pattern(flags: tuple[str, ...] | list[str]) -> str:
    """An RE2 regex matching an extraArgs item that sets one of `flags` the way vLLM's parser reads it.

    vLLM's argparse accepts more than the flag as written, and each form is covered: `--flag`,
    `--flag=v` and `--flag v` in one item; `_` for `-` (vLLM normalises it); `--no-flag` for
    booleans; the aliases in _VLLM_ALIASES; and any abbreviation (argparse's allow_abbrev resolves
    `--max-model` to `--max-model-len`). No other vLLM 0.33.0 option is a prefix of an owned one, so
    the abbreviations refused are ones vLLM would resolve to the owned flag or reject as ambiguous.
    One-letter short options also take their value attached (`-n2`).
    """
    longs: list[str] = []
    shorts: list[str] = []
    letters: list[str] = []
    for flag in flags:
        for option in (flag, *_VLLM_ALIASES.get(flag, ())):
            if option.startswith("--"):
                longs.append(_prefixes(option.removeprefix("--")))
            elif len(option) == 2:
                letters.append(re.escape(option[1]))
            else:
                shorts.append(_prefixes(option.removeprefix("-")))
    alternatives = [f"-(no[-_])?({'|'.join(longs)})([= ].*)?"]
    if shorts:
        alternatives.append(f"({'|'.join(shorts)})([= ].*)?")
    if letters:
        alternatives.append(f"({'|'.join(letters)}).*")
    return f"^-({'|'.join(alternatives)})$"


OWNED_FLAG_RE = re.compile(owned_flag_pattern(OWNED_FLAGS))


def owned_flags_in(args: list[str]) -> list[str]:
    """The items of `args` that would set a flag the operator owns."""
    return [arg for arg in args if OWNED_FLAG_RE.match(arg)]
