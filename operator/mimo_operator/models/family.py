"""The MiMo family the operator knows: model name -> checkpoint -> profile, and what vLLM needs per member.

A known checkpoint is a published config.json kept as a fixture in `checkpoints/` (sources in the README
there), read by the one parser in `checkpoint.py`; its precision is the one its quantization_config
declares and its byte size is cross-checked against its safetensors index where that was found. A
model name the registry does not know is refused with the list below, unless the user hands the
planner the checkpoint's own config.json (a fine-tune or copy of a known architecture).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from mimo_operator.models.checkpoint import (
    SUPPORTED_ARCHITECTURES,
    CheckpointConfigError,
    CheckpointSource,
    profile_from_config,
)
from mimo_operator.models.profile import EncoderSpec, ModelProfile, Precision

# MiMo-V2.5 model card ("Model Summary"): a 729M-parameter ViT (28 layers) and a 261M-parameter audio
# transformer, in bf16 (the weight listing: visual.*, audio_encoder.*, speech_embeddings.*).
# vLLM's --limit-mm-per-prompt keys: the ViT serves image and video, the audio tower audio. In vLLM
# 0.33.0 (model_executor/models/mimo_v2_omni.py) the ViT's attention and MLP are tensor-parallel layers
# (QKVParallelLinear, Qwen2_5_VisionMLP); the audio encoder (mimo_audio.py MimoAudioEncoder) uses plain
# nn.Linear, a full copy on every rank.
V25_ENCODERS = (
    EncoderSpec("vision_encoder", "image,video", 729_000_000, tensor_parallel=True),
    EncoderSpec("audio_encoder", "audio", 261_000_000, tensor_parallel=False),
)


@dataclass(frozen=True)
class ServingTraits:
    """What `vllm serve` needs for one family member in vLLM 0.33.0."""

    # The class vLLM 0.33.0 instantiates. MiMo-V2.5's config.json says MiMoV2ForCausalLM, but vLLM's
    # MimoV2ModelArchConfigConvertor (transformers_utils/model_arch_config_convertor.py) rewrites it to
    # MiMoV2OmniForCausalLM whenever config.json has a vision_config: no --hf-overrides is needed.
    vllm_architecture: str
    reasoning_parser: str
    tool_call_parser: str
    multimodal: bool  # accepts images/video/audio; --limit-mm-per-prompt applies


# Parsers registered in vLLM 0.33.0 under the name `mimo` (vllm/reasoning/__init__.py,
# vllm/tool_parsers/__init__.py); the MiMo-V2 chat templates share the <think> and tool-call format.
_TEXT = ServingTraits("MiMoV2ForCausalLM", "mimo", "mimo", multimodal=False)
_FLASH = ServingTraits("MiMoV2FlashForCausalLM", "mimo", "mimo", multimodal=False)
_OMNI = ServingTraits("MiMoV2OmniForCausalLM", "mimo", "mimo", multimodal=True)


@dataclass(frozen=True)
class KnownCheckpoint:
    """One published checkpoint: its fixture, where it came from, and how vLLM serves it."""

    name: str  # Hugging Face repo id, what spec.model.name says
    member: str  # family member, for people
    config_fixture: str  # file in models/checkpoints/
    revision: str | None  # Hugging Face revision the fixture was read at (None: not found)
    mtp_layers: int  # MTP blocks in the weights (config.json does not say; see the fixture README)
    encoders: tuple[EncoderSpec, ...]
    serving: ServingTraits
    # metadata.total_size of model.safetensors.index.json at `revision`, or the tensor total a
    # published weight listing gives; the profile's bytes must agree within 1%.
    published_bytes: int | None
    published_bytes_source: str


GIB = 2**30

KNOWN_CHECKPOINTS: dict[str, KnownCheckpoint] = {
    c.name: c
    for c in (
        KnownCheckpoint(
            name="XiaomiMiMo/MiMo-V2-Flash",
            member="MiMo-V2-Flash",
            config_fixture="mimo-v2-flash.config.json",
            revision=None,
            # Model card: "We also open-source 3-layer MTP weights".
            mtp_layers=3,
            encoders=(),
            serving=_FLASH,
            # ~313 GB: the size of the Hub repository's weight files as the project's research recorded
            # it; no index total_size was found to cite (models/checkpoints/README.md).
            published_bytes=313_000_000_000,
            published_bytes_source="Hub file sizes, ~313 GB (index total_size not found)",
        ),
        KnownCheckpoint(
            name="XiaomiMiMo/MiMo-V2.5",
            member="MiMo-V2.5",
            config_fixture="mimo-v2.5.config.json",
            revision="63651580ca774f8504f676040460aed3e1244ac1",
            # Weight listing: model.mtp.layers.0-2; model card: "MTP: 329M parameters, 3 layers".
            mtp_layers=3,
            encoders=V25_ENCODERS,
            serving=_OMNI,
            # Published weight listing of the checkpoint: 293.40 GiB of tensors in 17 files.
            published_bytes=round(293.40 * GIB),
            published_bytes_source="weight listing, 293.40 GiB of tensors (index total_size not found)",
        ),
        KnownCheckpoint(
            name="XiaomiMiMo/MiMo-V2.5-Pro",
            member="MiMo-V2.5-Pro",
            config_fixture="mimo-v2.5-pro.config.json",
            revision="21d1ecfecd7bd70f31be25ca49d7edd21f003659",
            # Weight listing: model.mtp.layers.0-2 in model_mtp.safetensors.
            mtp_layers=3,
            encoders=(),
            serving=_TEXT,
            # model.safetensors.index.json metadata.total_size (mimo-v2.5-pro.index.json).
            published_bytes=1_033_369_538_304,
            published_bytes_source="model.safetensors.index.json metadata.total_size",
        ),
    )
}


def supported_names() -> str:
    return ", ".join(KNOWN_CHECKPOINTS)


def _fixture(name: str) -> dict[str, Any]:
    text = resources.files("mimo_operator.models").joinpath("checkpoints", name).read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def published_config(name: str) -> dict[str, Any]:
    """The config.json fixture of a known checkpoint (KeyError for unknown names)."""
    return _fixture(KNOWN_CHECKPOINTS[name].config_fixture)


def index_total_size(fixture: str) -> int | None:
    """metadata.total_size of a stored index fixture (None when the index was not found)."""
    try:
        data = _fixture(fixture)
    except FileNotFoundError:
        return None
    total = data.get("metadata", {}).get("total_size")
    return total if isinstance(total, int) else None


@functools.cache
def known_profile(name: str) -> ModelProfile:
    """The profile of a known checkpoint, derived from its fixture (KeyError for unknown names)."""
    known = KNOWN_CHECKPOINTS[name]
    source = CheckpointSource(
        name=known.name, revision=known.revision, mtp_layers=known.mtp_layers, encoders=known.encoders
    )
    return profile_from_config(_fixture(known.config_fixture), source)


def traits_for_architecture(config: dict[str, Any]) -> ServingTraits:
    """Serving traits of a user-supplied config.json, from the family member it is built like."""
    arch = (config.get("architectures") or [""])[0]
    if arch == "MiMoV2FlashForCausalLM":
        return _FLASH
    if arch == "MiMoV2OmniForCausalLM" or "vision_config" in config or "audio_config" in config:
        return _OMNI
    return _TEXT


@dataclass(frozen=True)
class ResolvedModel:
    """What the planner and the renderer need about the model a spec names."""

    profile: ModelProfile
    serving: ServingTraits
    known: KnownCheckpoint | None  # None for a user-supplied config.json


class UnknownModel(ValueError):
    """The model cannot be planned; the message says which names are known and what else to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def resolve_model(
    name: str,
    config_json: str | None = None,
    copy_of: str | None = None,
    precision: Precision | None = None,
    config_origin: str = "spec.model.config",
) -> ResolvedModel:
    """A known checkpoint by name; a copy of one in `precision` (copy_of); or the user's own config.json
    (a fine-tune of a known architecture; `config_origin` names where it came from in messages).
    Raises UnknownModel with the supported list."""
    if copy_of is not None and config_json is None:
        if copy_of not in KNOWN_CHECKPOINTS:
            raise UnknownModel(
                "UnknownModel",
                f"spec.model.copyOf {copy_of!r} is not a known checkpoint; known: {supported_names()}",
            )
        known = KNOWN_CHECKPOINTS[copy_of]
        profile = known_profile(copy_of)
        if precision is not None:
            profile = replace(
                profile, name=name.rsplit("/", 1)[-1], hf_repo=name, official_precision=precision
            )
        return ResolvedModel(profile, known.serving, None)
    if config_json is not None:
        try:
            config = json.loads(config_json)
        except json.JSONDecodeError as err:
            raise UnknownModel("ModelConfigInvalid", f"{config_origin} is not JSON: {err}") from err
        if not isinstance(config, dict):
            raise UnknownModel("ModelConfigInvalid", f"{config_origin} must be a JSON object (config.json)")
        serving = traits_for_architecture(config)
        encoders = V25_ENCODERS if serving.multimodal else ()
        source = CheckpointSource(name=name, encoders=encoders)
        try:
            profile = profile_from_config(config, source)
        except CheckpointConfigError as err:
            raise UnknownModel("ModelConfigIncomplete", f"{config_origin}: {err}") from err
        return ResolvedModel(profile, serving, None)
    if name not in KNOWN_CHECKPOINTS:
        raise UnknownModel(
            "UnknownModel",
            f"model {name!r} is not a checkpoint the planner knows; known: {supported_names()}. "
            f"For a fine-tune or copy of one of them ({', '.join(SUPPORTED_ARCHITECTURES)}), "
            "set spec.model.config to its config.json",
        )
    known = KNOWN_CHECKPOINTS[name]
    return ResolvedModel(known_profile(name), known.serving, known)


def precision_problem(resolved: ResolvedModel, requested: Precision) -> str | None:
    """Why `requested` cannot be served from this checkpoint (None when it agrees)."""
    stored = resolved.profile.official_precision
    if requested == stored:
        return None
    if resolved.known is not None:
        return (
            f"precision {requested} does not match the checkpoint: {resolved.known.name} is stored in "
            f"{stored} (its config.json quantization_config), and vLLM serves the weights it finds. "
            f"Set precision: {stored}, or point spec.model.name at a {requested} copy of it and set "
            f"spec.model.copyOf: {resolved.known.name}"
        )
    return (
        f"precision {requested} does not match the checkpoint's config.json, which declares a "
        f"{stored} checkpoint (quantization_config): set precision: {stored}"
    )
