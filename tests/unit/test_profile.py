"""The MiMo-V2-Flash profile reproduces the published sizes from its parameter groups."""

import pytest

from mimo_operator.models.mimo_v2_flash import MIMO_V2_FLASH as M

GB = 1e9
GIB = 2**30


def test_total_parameters_match_the_model_card() -> None:
    # Model card: 309B total parameters, ~310B counting the three MTP blocks (~0.33B each).
    assert M.total_params(include_mtp=False) / 1e9 == pytest.approx(309, rel=0.005)
    assert (M.total_params() - M.total_params(include_mtp=False)) / 1e9 == pytest.approx(3 * 0.33, rel=0.05)


def test_active_parameters_are_about_15b() -> None:
    # Active per token: everything but the routed experts, plus top-8 of 256 experts per MoE layer.
    experts = next(g for g in M.param_groups if g.name == "experts")
    mtp = sum(g.total_params for g in M.param_groups if g.placement == "mtp")
    embed = M.vocab_size * M.hidden_size  # a lookup, not a matmul
    active = M.total_params() - mtp - embed - experts.total_params * (1 - 8 / 256)
    assert active / 1e9 == pytest.approx(15, rel=0.05)


@pytest.mark.parametrize(
    ("precision", "published_gb", "tolerance"),
    [
        ("fp8", 313, 0.01),  # model-facts: official checkpoint ~313 GB
        ("bf16", 618, 0.01),  # model-facts / blog: ~618 GB dequantized
        ("int4", 160, 0.03),  # model-facts: ~155 GB + scales and bf16 parts (~160 GB)
    ],
)
def test_checkpoint_sizes_match_published_figures(
    precision: str, published_gb: float, tolerance: float
) -> None:
    assert M.checkpoint_bytes(precision) / GB == pytest.approx(published_gb, rel=tolerance)  # type: ignore[arg-type]


def test_hybrid_layer_pattern() -> None:
    assert len(M.full_attention_layers) == 9
    assert len(M.sliding_layers) == 39
    assert M.sliding_attention.sliding_window == 128
    assert M.full_attention.kv_heads == 4 and M.sliding_attention.kv_heads == 8
