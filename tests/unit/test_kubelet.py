"""The `$(VAR)` expansion the renderer's tests rely on behaves as the kubelet's: cases (and expected
values) as in Kubernetes' own table, third_party/forked/golang/expansion/expand_test.go."""

import pytest

from tests.unit.kubelet import expand

ENV = {"VAR_A": "A", "VAR_B": "B", "NODE_RANK": "1"}


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("--node-rank=$(NODE_RANK)", "--node-rank=1"),
        ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),  # `$$` is a literal `$`: how the renderer quotes users
        ("$$(VAR_DNE)", "$(VAR_DNE)"),
        ("$(VAR_DNE)", "$(VAR_DNE)"),  # undefined: left as written
        ("$(VAR_A", "$(VAR_A"),  # incomplete reference
        ("$$$(VAR_A)", "$A"),
        ("$$$$(VAR_A)", "$$(VAR_A)"),
        ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),  # multiple (even) operators, var undefined
        ("$$$$$$(VAR_A)", "$$$(VAR_A)"),  # multiple (even) operators, var defined
        ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),  # multiple (odd) operators, var undefined
        ("$$$$$$$(VAR_A)", "$$$A"),  # multiple (odd) operators, var defined
        ("$VAR_A)", "$VAR_A)"),  # missing open expression
        ("${VAR_A}", "${VAR_A}"),  # shell special vars pass through
        ("$VAR_A", "$VAR_A"),  # only $( and $$ are special
        ("foo$", "foo$"),
        ("", ""),
    ],
)
def test_expansion_matches_kubernetes(text: str, expanded: str) -> None:
    assert expand(text, ENV) == expanded
